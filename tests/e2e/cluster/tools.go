//go:build tools

// Package cluster pins the control-plane commands that the end-to-end tests
// build: kube-apiserver, kube-controller-manager, kube-scheduler, the kubelet and
// etcd. Nothing here is compiled into init-injector; the build script builds these
// by import path.
package cluster

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
