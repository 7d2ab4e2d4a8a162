{{/* Names, labels and the flags every template agrees on. */}}

{{- define "init-injector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name, at most 63 characters: release name, then the chart name unless the release already contains it. */}}
{{- define "init-injector.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "init-injector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "init-injector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "init-injector.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "init-injector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: webhook
{{- end }}

{{- define "init-injector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "init-injector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "init-injector.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret that holds the serving certificate (and, in self mode, the CA). */}}
{{- define "init-injector.tlsSecretName" -}}
{{- if eq .Values.certificates.mode "secret" }}
{{- required "certificates.secret.name is required when certificates.mode is secret" .Values.certificates.secret.name }}
{{- else }}
{{- printf "%s-tls" (include "init-injector.fullname" .) }}
{{- end }}
{{- end }}

{{/* The label that opts a whole namespace out: P/inject=false. */}}
{{- define "init-injector.optOutLabel" -}}
{{- printf "%s/inject" .Values.annotationPrefix }}
{{- end }}

{{/* Which pods the API server sends: `annotated` (only pods with an annotation under the prefix) or `all`; `auto` picks `all` when policies are enabled. */}}
{{- define "init-injector.podFilter" -}}
{{- if eq .Values.webhook.podFilter "auto" }}
{{- ternary "all" "annotated" .Values.policies.enabled }}
{{- else }}
{{- .Values.webhook.podFilter }}
{{- end }}
{{- end }}
