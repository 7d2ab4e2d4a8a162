"""The link map and the traces behind link/serve.order (benches/link-order.sh).

    python3 benches/link_map.py check MAP ORDER MIN_PERCENT
    python3 benches/link_map.py write BINARY MAP ORDER TRACE...

`check` says how many of ORDER's names the link that wrote MAP defined, and where, and
fails under MIN_PERCENT. `write` maps the instructions that callgrind traces of BINARY
ran onto MAP's functions and writes their names to ORDER: serve's first, then those only
wait runs (a trace whose file name has `.wait` in it is wait's).
"""

import bisect
import re
import sys

# A map line (rust-lld's -Map): address, load address, size, alignment, then the name,
# indented by its kind: 0 for an output section, 8 for an input section, 16 for a symbol.
ENTRY = re.compile(r'^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+ ( *)(\S.*)$')

# A callgrind name line: ob=(1) /path the first time, ob=(1) after (fn, cob, cfn alike).
NAMED = re.compile(r'^(c?ob|c?fn)=\((\d+)\)(?: (.*))?$')


def text_sections(map_path):
    """The input sections of .text, in address order: (start, end, [symbols])."""
    sections, in_text = [], False
    with open(map_path) as f:
        for line in f:
            m = ENTRY.match(line.rstrip('\n'))
            if not m:
                continue
            addr, size, indent, name = int(m[1], 16), int(m[2], 16), len(m[3]), m[4]
            if indent == 0:
                in_text = name == '.text'
            elif in_text and indent == 8:
                sections.append((addr, addr + size, []))
            elif in_text and indent == 16 and sections:
                sections[-1][2].append(name)
    if not sections:
        sys.exit(f'link-order.sh: no .text input sections in {map_path}')
    return sections


def check(map_path, order_path, min_percent):
    wanted = [l.strip() for l in open(order_path) if l.strip() and not l.startswith('#')]
    sections = text_sections(map_path)
    start = {}
    for begin, _, symbols in sections:
        for symbol in symbols:
            start.setdefault(symbol, begin)
    text_start, text_end = sections[0][0], sections[-1][1]
    found = [start[name] for name in wanted if name in start]
    percent = 100 * len(found) / len(wanted) if wanted else 0
    span = (max(found) - text_start) / 1024 if found else 0
    print(f'link order: {len(found)} of the {len(wanted)} functions of {order_path} '
          f'({percent:.1f} %) in the release binary, all starting in the first '
          f'{span:,.0f} KiB of its {(text_end - text_start) / 1024:,.0f} KiB of code')
    if percent < min_percent:
        sys.exit(f'link-order.sh: under {min_percent:.0f} % of {order_path} found: the '
                 'toolchain or a dependency renamed the functions; run bash '
                 'benches/link-order.sh and commit the new list')


def executed(trace, binary):
    """The linked addresses of the instructions of `binary` that a callgrind trace ran.

    With --dump-instr=yes --compress-pos=no each cost line starts with its instruction's
    address, as linked (the object's load address taken off), under the last fn= line,
    whose object is the last ob= line's. An object's name is given on its first ob= or
    cob= line (a callee's object).
    """
    addresses, objects, current_object, in_binary = set(), {}, None, False
    for line in open(trace):
        if line.startswith('0x'):
            if in_binary:
                addresses.add(int(line.split(None, 1)[0], 16))
            continue
        m = NAMED.match(line.rstrip('\n'))
        if not m:
            continue
        if m[1].endswith('ob') and m[3] is not None:
            objects[m[2]] = m[3]
        if m[1] == 'ob':
            current_object = objects[m[2]]
        elif m[1] == 'fn':
            in_binary = current_object == binary
    return addresses


def write(binary, map_path, order_path, traces):
    sections = text_sections(map_path)
    starts = [begin for begin, _, _ in sections]

    def functions(addresses):
        names, instructions = set(), 0
        for address in addresses:
            i = bisect.bisect_right(starts, address) - 1
            if i >= 0 and address < sections[i][1]:
                instructions += 1
                names.update(sections[i][2])
        return names, instructions

    addresses = {'serve': set(), 'wait': set()}
    for trace in traces:
        addresses['wait' if '.wait' in trace else 'serve'] |= executed(trace, binary)
    serve, serve_instructions = functions(addresses['serve'])
    wait, wait_instructions = functions(addresses['wait'])
    wait -= serve
    if len(serve) < 100 or len(wait) < 10:
        sys.exit(f'link-order.sh: only {len(serve)} functions of serve and {len(wait)} of '
                 f'wait traced; is {binary} the binary {map_path} describes?')
    with open(order_path, 'w') as out:
        out.write('# The functions `serve` runs, then those only `wait` runs, first in the '
                  'release\n# binary\'s code (build.rs). Written by benches/link-order.sh '
                  'from a trace of the\n# release build; do not edit: run it again after a '
                  'toolchain or dependency update.\n')
        for name in sorted(serve) + sorted(wait):
            out.write(name + '\n')
    print(f'link-order.sh: serve ran {serve_instructions} of the binary\'s instructions, in '
          f'{len(serve)} functions; wait {wait_instructions}, in {len(wait)} more; written '
          f'to {order_path}')


if __name__ == '__main__':
    command, *args = sys.argv[1:] or ['']
    if command == 'check' and len(args) == 3:
        check(args[0], args[1], float(args[2]))
    elif command == 'write' and len(args) >= 4:
        write(args[0], args[1], args[2], args[3:])
    else:
        sys.exit(__doc__)
