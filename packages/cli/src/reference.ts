import { vmSpecSchema } from '@my-hypervisor/vm-manager';
import type { Command, Help } from 'commander';
import { z } from 'zod';
import { DEFAULT_CONFIG_FILE } from './config.js';
import { cliErrorCodes } from './errors.js';
import { createProgram } from './program.js';
import { configFileSettings, settings } from './settings.js';

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const table = (head: readonly string[], rows: readonly (readonly string[])[]) =>
  [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');

function fullName(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function leaves(command: Command): Command[] {
  const help = command.createHelp();
  const subs = help.visibleCommands(command).filter((c) => c.name() !== 'help');
  if (subs.length === 0) return [command];
  // A command with an action of its own and subcommands (`vm snapshot`) is documented too.
  const own = (command as unknown as { _actionHandler?: unknown })._actionHandler ? [command] : [];
  return [...own, ...subs.flatMap(leaves)];
}

function commandSection(command: Command, help: Help): string {
  const name = fullName(command);
  const parts = [`### \`${name}\``, '', command.description(), '', '```', help.commandUsage(command), '```'];
  const aliases = command.aliases();
  if (aliases.length > 0) parts.push('', `Alias: ${aliases.map((a) => `\`${a}\``).join(', ')}.`);
  const args = help.visibleArguments(command);
  if (args.length > 0) {
    parts.push(
      '',
      table(
        ['argument', 'description'],
        args.map((a) => [`\`${help.argumentTerm(a)}\``, help.argumentDescription(a)]),
      ),
    );
  }
  const options = help.visibleOptions(command).filter((o) => o.long !== '--help');
  if (options.length > 0) {
    parts.push(
      '',
      table(
        ['option', 'description'],
        options.map((o) => [`\`${help.optionTerm(o)}\``, help.optionDescription(o)]),
      ),
    );
  }
  return parts.join('\n');
}

interface JsonSchemaNode {
  type?: string | string[];
  properties?: Record<string, JsonSchemaNode>;
  items?: JsonSchemaNode;
  anyOf?: JsonSchemaNode[];
  required?: string[];
  default?: unknown;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  maxItems?: number;
  maxProperties?: number;
  pattern?: string;
  /** A record's keys and values (`labels`). */
  propertyNames?: JsonSchemaNode;
  additionalProperties?: JsonSchemaNode | boolean;
}

/** The limits of a scalar or array field: allowed values, ranges, lengths, counts, pattern. */
function limitsOf(node: JsonSchemaNode): string[] {
  const limits: string[] = [];
  if (node.enum) limits.push(`one of ${node.enum.join(', ')}`);
  if (node.minimum !== undefined || node.maximum !== undefined)
    limits.push(`${node.minimum ?? ''}–${node.maximum ?? ''}`);
  if (node.maxLength !== undefined) limits.push(`≤ ${node.maxLength} chars`);
  if (node.maxItems !== undefined) limits.push(`≤ ${node.maxItems} items`);
  if (node.maxProperties !== undefined) limits.push(`≤ ${node.maxProperties} entries`);
  if (node.pattern) limits.push(`\`${node.pattern}\``);
  const values = typeof node.additionalProperties === 'object' ? node.additionalProperties : undefined;
  if (node.propertyNames) limits.push(`keys ${limitsOf(node.propertyNames).join(' ')}`.trim());
  if (values && node.propertyNames) limits.push(`values ${limitsOf(values).join(' ')}`.trim());
  const items = node.type === 'array' ? node.items : undefined;
  if (items && !items.properties && (items.minimum !== undefined || items.maximum !== undefined))
    limits.push(`each ${items.minimum ?? ''}–${items.maximum ?? ''}`);
  return limits;
}

/** A scalar or array type as a reader writes it: `string`, `array of integer`, `array of objects`. */
function typeText(node: JsonSchemaNode): string {
  if (node.type === 'object' && node.propertyNames && typeof node.additionalProperties === 'object')
    return `map of ${node.propertyNames.type ?? 'any'} to ${typeText(node.additionalProperties)}`;
  if (node.type === 'array')
    return node.items?.properties ? 'array of objects' : `array of ${node.items?.type ?? 'any'}`;
  return Array.isArray(node.type) ? node.type.join(' or ') : (node.type ?? 'any');
}

/** One row per field of the VmSpec, generated from the schema itself (vm-manager's `vmSpecSchema`). */
function specRows(node: JsonSchemaNode, prefix: string, required: readonly string[], rows: string[][]): void {
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    const path = prefix ? `${prefix}.${key}` : key;
    const isRequired = required.includes(key);
    const dflt = child.default === undefined ? '' : `\`${JSON.stringify(child.default)}\``;
    if (child.anyOf) {
      // A union such as `allow-all | deny-all | rule[]`: each alternative's values or type, then the fields of
      // an alternative that is a list of objects.
      const alternatives = child.anyOf.map((alt) =>
        alt.enum ? alt.enum.map((v) => `\`${String(v)}\``).join(' | ') : typeText(alt),
      );
      const limits = child.anyOf.flatMap((alt) => (alt.enum ? [] : limitsOf(alt)));
      rows.push([`\`${path}\``, alternatives.join(' | '), isRequired ? 'yes' : '', dflt, limits.join(', ')]);
      for (const alt of child.anyOf) {
        if (alt.type === 'array' && alt.items?.properties)
          specRows(alt.items, `${path}[]`, alt.items.required ?? [], rows);
      }
    } else if (child.type === 'object' && child.properties) {
      rows.push([`\`${path}\``, 'object', isRequired ? 'yes' : '', dflt, '']);
      specRows(child, path, child.required ?? [], rows);
    } else if (child.type === 'array' && child.items?.properties) {
      rows.push([
        `\`${path}[]\``,
        'array of objects',
        isRequired ? 'yes' : '',
        dflt,
        limitsOf(child).join(', '),
      ]);
      specRows(child.items, `${path}[]`, child.items.required ?? [], rows);
    } else {
      rows.push([`\`${path}\``, typeText(child), isRequired ? 'yes' : '', dflt, limitsOf(child).join(', ')]);
    }
  }
}

const jsonShapes = `Every command prints exactly one JSON document on stdout with \`--json\`, except the streams
(\`myhv events\`, \`myhv vm stats --watch\`), which print one JSON object per line (NDJSON); progress and notes are not
printed. Fields are only ever added, never renamed or removed, within a major version. \`VmInfo\` is the
\`VmInfo\` of \`@my-hypervisor/vm-manager\` (memory in bytes); \`StepEvent\` lines are \`{ vm, op, step, phase, ms,
error }\` for each finished (\`done\`), \`failed\` or \`undone\` step, \`ms\` rounded to 0.01.

\`\`\`ts
// source 'fallback': only myhv demo, with no VMM configured or on PATH
type Vmm = { kind: 'cloud-hypervisor' | 'simulator'; path: string | null; source: 'flag' | 'env' | 'config' | 'path' | 'fallback' };
type Forward = { protocol: 'tcp' | 'udp'; hostPort: number; guestIp: string; guestPort: number; hostIp: string | null };
type VmSummary = { name: string; id: string; status: 'creating' | 'stopped' | 'running' | 'paused' | 'deleting';
  vmmAlive: boolean; ip: string | null; cpus: number; memory: number; forwards: Forward[]; shares: string[]; createdAt: string };
type Step = { vm: string; op: string; step: string; phase: 'done' | 'failed' | 'undone'; ms: number | null; error: string | null };
// a VM whose record cannot be used: CORRUPT_STATE (missing, unreadable, not a record) or UNSAFE_PERMISSIONS
// (another user owns it or group/others could write it); path: the file or directory at fault
type Unreadable = { name: string; path: string; code: 'CORRUPT_STATE' | 'UNSAFE_PERMISSIONS'; reason: string };

// myhv version
{ name: 'myhv'; version: string; node: string }
// myhv vm create | vm start | vm restart; ready: with --wait-ready (vm create, vm start), what the guest's init said
{ vmm: Vmm; vm: VmInfo; steps: Step[]; ready?: { ip: string | null; shares: string[] } }
// myhv vm stop | vm pause | vm resume
{ vm: VmInfo; steps: Step[] }
// myhv vm rm
{ removed: { name: string; id: string }[]; steps: Step[] }
// myhv vm ls (the table shows unreadable ones too, with status unreadable)
{ vms: VmSummary[]; unreadable: Unreadable[] }
// myhv vm inspect (vm.confinement, when the VM runs confined: { uid, gid, cgroup?, limits: { cpus, memoryBytes, pids },
//   processes: { role: 'vmm' | 'virtiofsd'; tag?; pid; uid; gid; groups; capEff; noNewPrivs; seccomp; seccompThreads?: { filtered; total }; cgroups }[] })
{ vm: VmInfo }
// myhv vm console (printed after detaching; interactive, so --json only changes this line)
{ vm: string; detached: true }
// myhv vm logs (not with --follow)
{ vm: string; log: 'serial' | 'vmm'; path: string; lines: string[] }
// myhv vm resize (vm.spec holds the new cpus, memory and the memoryHotplug left; a stop/start keeps them)
{ vm: VmInfo }
// myhv vm stats; with --watch, NDJSON: one such object per line every interval (rates null on the first line)
{ stats: VmStats; rates: { seconds: number; counters: { [device: string]: { [counter: string]: number } };
  vmm: { cpuPercent: number }; shares: { tag: string; cpuPercent: number | null }[] } | null }
// where VmStats = { vm: string; id: string; at: string; status: 'running' | 'paused';
//   counters: { [device: string]: { [counter: string]: number } }; vmm: Process; shares: { tag: string; process?: Process }[];
//   network?: { egressDenied: number; isolationDenied: number };  (network: packets its policy dropped, namespace backend)
//   cgroup?: { path: string; memoryBytes?: number; memoryLimitBytes?: number; cpuSeconds?: number; cpus?: number;
//     pids?: number; pidsLimit?: number } }  (cgroup: a confined VM's, VMM and virtiofsd together, against its limits)
// and Process = { pid: number; cpuSeconds: number; userSeconds: number; systemSeconds: number; rssBytes: number; threads: number }
// myhv vm snapshot (status: the VM's, after; Snapshot.status: the VM's when it was taken)
{ vm: string; status: 'running' | 'paused'; snapshot: Snapshot }
// where Snapshot = { id: string; path: string; createdAt: string; sizeBytes: number; status: 'running' | 'paused'; spec: VmSpec }
// myhv vm snapshot ls
{ vm: string; snapshots: Snapshot[] }
// myhv vm snapshot rm
{ vm: string; removed: Snapshot }
// myhv vm restore
{ vmm: Vmm; vm: VmInfo; snapshot: Snapshot | null; steps: Step[] }
// myhv vm disk add | vm disk rm (removed: the id or path given); devices: the VM's disks, shares and NICs after
{ vm: string; disk: Disk; devices: Devices } | { vm: string; removed: string; devices: Devices }
// myhv vm share add | vm share rm (removed: the tag given)
{ vm: string; share: Share; devices: Devices } | { vm: string; removed: string; devices: Devices }
// myhv vm nic add | vm nic rm (removed: the id given)
{ vm: string; nic: Nic; devices: Devices } | { vm: string; removed: string; devices: Devices }
// myhv vm disk ls | vm share ls | vm nic ls
{ vm: string; disks: Disk[] } | { vm: string; shares: Share[] } | { vm: string; nics: Nic[] }
// where Devices = { disks: Disk[]; shares: Share[]; nics: Nic[] }, Disk = { id: string; path: string; readOnly: boolean },
// Share = { id: string; tag: string; hostPath: string; readOnly: boolean }
// and Nic = { id: string; tap: string; mac?: string; ip?: string } (a NIC beyond the first, on the VM's network)
// myhv image build (built: false when the inputs were unchanged and the image was left alone)
{ built: boolean; image: Image }
// myhv image ls (broken: directories in the store that are not usable images)
{ images: Image[]; broken: { name: string; dir: string; problem: string }[] }
// myhv image inspect (vms: the VMs made from it)
{ image: Image; vms: string[] }
// myhv image rm (vms: those made from it, with --force)
{ removed: string; vms: string[] }
// where Image = { name: string; dir: string; kernel: string; initramfs: string; manifest: ImageManifest }
// and ImageManifest is the manifest.json of @my-hypervisor/guest-image
// myhv forward add
{ vm: string; forward: Forward }
// myhv forward rm
{ vm: string; protocol: 'tcp' | 'udp'; hostPort: number; removed: boolean }
// myhv forward ls
{ forwards: (Forward & { vm: string })[] }
// myhv net ensure (bridge: the default network's; networks: every network's)
{ backend: 'local' | 'mosnet' | 'namespace'; netns: string | null; bridge: EnsuredBridge; networks: EnsuredBridge[] }
// where EnsuredBridge = { name: string; address: string; subnet: string; network: string; created: boolean }
// myhv net ls (recorded: false for the default network before its first VM or net ensure)
{ networks: (Network & { vms: number })[] }
// where Network = { name: string; bridge: string; subnet: string; gateway: string; backend: string;
//                   nat: string | null; netns: string | null; recorded: boolean; createdAt: string | null }
// myhv net inspect (ports / forwards are null when the backend cannot list them, named in unsupported)
{ network: Network; backend: 'local' | 'mosnet' | 'namespace'; netns: string | null;
  bridge: { name: string; subnet: string; exists: boolean; ports: { name: string; vm: string | null }[] | null };
  forwards: (Forward & { owner: string | null; vm: string | null })[] | null; vms: string[]; unsupported: string[] }
// myhv net create
{ network: Network }
// myhv net rm
{ removed: Network }
// myhv events: NDJSON, not one document: one line per event, oldest first (with --follow, then as they happen);
// pid and seq (1, 2, … per process) name the process that wrote it; type 'vmm' is the VMM's own event monitor
// (source vm: booting, booted, pausing, paused, resuming, resumed, shutdown, deleted, device-removed, …; source vmm:
// starting, shutdown), copied by the VM's serial relay (its pid)
{ time: string; pid: number; seq: number; type: 'step'; vm: string; op: string; step: string;
  phase: 'start' | 'done' | 'failed' | 'undo' | 'undone'; ms?: number; error?: string }
  | { time: string; pid: number; seq: number; type: 'status'; vm: string; status: string }
  | { time: string; pid: number; seq: number; type: 'vmm'; vm: string; source: string; event: string;
      properties?: { [key: string]: string } }
// myhv doctor (exit 1 when a required check fails; vmm is null when none is configured or on PATH)
{ ok: boolean; vmm: Vmm | null; config: CliConfig;
  checks: { id: string; title: string; ok: boolean; required: boolean; skipped: boolean; detail: string; fix: string | null }[] }
// myhv gc (exit 1 when errors or unreadable is not empty); kind: vm, vmm, serial-relay, virtiofsd, bridge, tap,
// forward, ip, run-dir, temp-file, cgroup, uid, netns (namespace backend: a VM's namespace no VM owns, target its
// VM id; or a VM's namespace restored, target the namespace), and for abandoned demos: process, netns, demo-dir. A bridge, TAP, namespace or
// forward a record names but the host lacks (after a reboot) is made again, with action 'restored (...)'
{ changes: { kind: string; target: string; action: string; vm?: string }[];
  skipped: { target: string; reason: string }[]; errors: { target: string; message: string }[];
  unreadable: Unreadable[] }
// myhv autostart (exit 1 when a repair or a start failed; repairs is gc's report)
{ vmm: Vmm; repairs: { changes: unknown[]; skipped: unknown[]; errors: unknown[] };
  vms: { vm: string; result: 'started' | 'running' | 'failed'; status: string; error?: { code: string; message: string } }[] }
// myhv demo
{ vmm: Vmm; netns: string; dir: string; kernel: { path: string | null; probeGuest: boolean };
  guest: { vm: string; cmdline: string | null } | null; vms: VmSummary[];
  steps: { step: string; ms: number }[]; totalMs: number; cleanedUp: boolean; leftovers: string[];
  swept: { kind: string; target: string; action: string }[] }
// myhv daemon status (exit 1, DAEMON_UNAVAILABLE, when myhvd does not answer)
{ socket: string; version: string; pid: number; startedAt: string; uptimeMs: number; connections: number;
  vms: number; stateDir: string; watcher: { checks: number; exited: number; restarted: number; drift: number };
  settings: { stateDir: string; runDir: string; netBackend: string; nat: string; mosnetSocket: string; netns: string;
    bridge: string; subnet: string; vmmBinary: string; confinement: string; confinementUserfaultfd: string;
    vmmStandby: string; cluster?: string; hostId?: string } }
// myhv daemon run: runs until SIGINT/SIGTERM; with --json, its log on stderr is NDJSON
{ time: string; level: 'info' | 'warn' | 'error'; message: string; vm?: string; error?: string }
// with --cluster (fleet-wide): vm create, vm start, vm stop, vm inspect — create, start and stop wait up to 30 s for
// the host's report and exit 1 when it reports failed; status "pending" until the host of its current placement reports
{ vm: ClusterVm }
// with --cluster: vm ls; vm rm
{ vms: ClusterVm[] }
{ removed: string[] }
// ClusterVm
{ name: string; status: 'pending' | 'running' | 'stopped' | 'paused' | 'failed' | string; host: string | null;
  ip: string | null; epoch: number | null; running: boolean; cpus: number; memoryBytes: number;
  placement: { policy: 'spread' | 'pack'; labels: Record<string, string> }; restart: 'always' | 'no';
  reportedAt: string | null; error: string | null; spec: VmSpecInput }
// myhv --cluster … cluster hosts
{ hosts: { id: string; address: string; subnet: string; capacity: { cpus: number; memoryBytes: number };
  labels: Record<string, string>; startedAt: string; leaseTtlSeconds: number; vms: number; cpusPlaced: number;
  memoryPlacedBytes: number }[] }
// any failure, on stderr (one line)
{ error: { source: string; code: string; message: string; field: string | null; hint: string | null; exitCode: 1 | 2 | 130 } }
\`\`\``;

/**
 * docs/cli.md, generated from the command tree, the settings table and the VmSpec schema, so the reference cannot
 * drift from the code (a test compares the file with this output).
 */
export function renderCliReference(): string {
  const program = createProgram(async () => {});
  const help = program.createHelp();
  const settingRows = settings.map((s) => [
    `\`${s.flag}\``,
    `\`${s.env}\``,
    `\`${s.key}\``,
    s.defaultValue ? `\`${s.defaultValue}\`` : '—',
    s.description,
  ]);
  const schema = z.toJSONSchema(vmSpecSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchemaNode;
  const specTable: string[][] = [];
  specRows(schema, '', schema.required ?? [], specTable);
  const commandSections = leaves(program).map((c) => commandSection(c, help));

  return `# \`myhv\` command line reference

<!-- Generated from packages/cli/src (program.ts, settings.ts, reference.ts) by \`cd packages/cli && pnpm run docs\`.
     Do not edit by hand: packages/cli/src/reference.test.ts fails when this file and the command tree differ. -->

\`myhv\` runs Cloud Hypervisor microVMs on this host. Every command takes the global options below and \`--json\`.
Commands that start VMs say which VMM they use in their first line of output (\`vmm\` in JSON): the one
\`--vmm-binary\` (\`MYHV_CLOUD_HYPERVISOR\`, config key \`vmmBinary\`) names — a cloud-hypervisor binary, or
\`simulator\` for the bundled simulator (it speaks the Cloud Hypervisor API; no guest runs) — else
\`cloud-hypervisor\` on \`PATH\`. With neither, \`vm create\`, \`vm start\` and \`vm restart\` change nothing and exit 1
(\`VMM_NOT_FOUND\`, with a hint); \`myhv demo\` alone falls back to the simulator and says so on its first line.

## Global options

\`\`\`
myhv [--json] [--debug] [--no-daemon] [--config <file>] [settings…] <command>
\`\`\`

| option | description |
| --- | --- |
| \`--json\` | print one JSON document on stdout (shapes below); errors as one JSON line on stderr |
| \`--debug\` | on failure, also print the cause chain: each error's code, the failing command, its stderr, the VMM log tail |
| \`--no-daemon\` | run VM commands in this process even when myhvd answers on its socket (by default \`vm …\`, \`forward …\`, snapshots and devices go to a running myhvd: same output, same exit codes; a host setting given explicitly — flag, variable or config file — that the daemon runs otherwise is refused, exit 2, naming it) |
| \`--config <file>\` | config file; default \`MYHV_CONFIG\`, else \`${DEFAULT_CONFIG_FILE}\` when it exists |
| \`-V, --version\` | print the version |
| \`-h, --help\` | help for any command: \`myhv vm create --help\` |

### Settings

Each setting comes from, in order of precedence: its **flag**, its **environment variable**, the **config file**
key, the **default**. An empty environment variable counts as unset.

${table(['flag', 'environment', 'config key', 'default', 'description'], settingRows)}

\`NO_COLOR\` (any non-empty value) turns colour off; colour is also off whenever stdout is not a terminal.

The config file is YAML (or JSON): one mapping of config keys to strings. Unknown keys are errors, and so are a
file over 1 MiB and YAML aliases that would expand too far (an alias bomb): exit 2, naming the file.

Set only in the config file (no flag or variable: root's policy, not one invocation's choice):

${table(
  ['config key', 'description'],
  configFileSettings.map((s) => [`\`${s.key}\``, s.description]),
)}

\`\`\`yaml
# ${DEFAULT_CONFIG_FILE}
stateDir: /var/lib/myhv
netBackend: local
nat: nft
bridge: myhvbr0
subnet: 10.62.0.0/24
allowedVmmBinaries: [/opt/cloud-hypervisor/v53/cloud-hypervisor]
\`\`\`

The state and run directories, every directory on the way to them and every file in them must be owned by root
(by you, when not root) and not writable by group or others — a directory on the way may be when sticky, like
\`/tmp\`. A VM record names the VMM binary, its arguments and the kernel root runs, so myhv refuses anything else:
\`UNSAFE_PERMISSIONS\`, exit 1, naming the path and the fix, such as
\`chown root: /var/lib/myhv && chmod 700 /var/lib/myhv\`. \`myhv doctor\` lists every such path. myhv makes its own
directories 0700 and its files and sockets 0600, whatever the umask.

## Output

- On a terminal: tables with aligned columns under a header; progress of multi-step work (create, start, stop, rm,
  demo) as one line per step, rewritten in place from \`…\` to \`✓\`/\`✗\` with its time, on stderr.
- Not on a terminal: tables are tab-separated rows without a header (for \`cut -f\`), like \`gh\`; progress is one
  plain line per finished step with its time, on stderr. No colour.
- \`--json\`: one JSON document on stdout, nothing else there; no progress. Indented on a terminal, one line
  otherwise. The streams (\`events\`, \`vm stats --watch\`) print one compact JSON object per line instead.
- Errors go to stderr: \`myhv: error: <message>\` naming the flag, variable, spec field or resource, then
  \`hint: <what to do>\`. With \`--json\` the same as one JSON line.

## Exit codes

| code | meaning |
| --- | --- |
| 0 | success |
| 1 | the operation ran and failed; or what it acts on does not exist (\`NOT_FOUND\`, e.g. \`myhv vm start nosuch\`): the input was well-formed, the thing is missing; no VMM for a command that starts one (\`VMM_NOT_FOUND\`); bad host state: a state or run directory (or a file in one) another user owns or group or others could write (\`UNSAFE_PERMISSIONS\`, nothing read from it); \`doctor\` with a failing required check; \`gc\` with a failed repair or a VM record it cannot read |
| 2 | bad input: usage (unknown command or option, missing or conflicting arguments), an invalid flag, variable, config file or spec file (\`INVALID_ARGUMENT\` of any package, checked before anything is changed) |
| 130 | interrupted by Ctrl-C (SIGINT) or SIGTERM, after undoing or removing what the command had made |

Error codes of the CLI itself (\`source: "CliError"\`): ${cliErrorCodes.map((c) => `\`${c}\``).join(', ')}. Errors of
the libraries keep their class and code (\`VmManagerError\`, \`NetOpsError\`, \`StorageError\`, \`ChvApiError\`).

## Commands

${commandSections.join('\n\n')}

## Spec files

\`myhv vm create -f spec.yaml\` (or \`-f -\` for stdin) reads one VmSpec in YAML or JSON — the same schema the flags
fill in (\`vmSpecSchema\` of \`@my-hypervisor/vm-manager\`). Unknown fields and wrong types are errors naming the field
(exit 2), and so are a file (or stdin) over 1 MiB, of which no more is read, and YAML aliases that would expand too
far (an alias bomb). \`--file\` is not combined with the spec flags or a NAME argument.

\`\`\`yaml
name: web
kernel: /var/lib/myhv/kernels/vmlinux
memory: 1G
cpus: 2
network:
  forwards:
    - { hostPort: 8080, guestPort: 80 }
shares:
  - { hostPath: /srv/www, tag: www }
\`\`\`

${table(['field', 'type', 'required', 'default', 'limits'], specTable)}

The network policy (\`network.isolation\`, \`network.egress\`; flags \`--isolation\`, \`--egress\`) needs the
\`namespace\` network backend, which puts each VM in its own network namespace \`myhv-<VM id>\` (its VMM runs there)
and enforces the policy with nft on the host side, out of the guest's reach. There \`isolation\` defaults to \`vm\`
(no other VM, no host address but the gateway's DNS and ping) and \`egress\` to \`allow-all\`; an egress rule allows
traffic to \`cidr\`, optionally only \`proto\` and \`ports\` (ports without a protocol: TCP and UDP). On another
backend, any policy but the open one (\`isolation: none\`, \`egress: allow-all\`) is refused (exit 2) before anything
is made. \`--egress\` writes rules as \`CIDR[:tcp|udp|icmp][:PORT[+PORT…]]\` separated by commas, e.g.
\`--egress 10.0.0.0/8,192.0.2.10:tcp:80+443,198.51.100.53:udp:53\` (a bare address is a /32).

\`\`\`yaml
network:
  isolation: vm
  egress:
    - { cidr: 10.0.0.0/8 }
    - { cidr: 192.0.2.10/32, proto: tcp, ports: [80, 443] }
\`\`\`

Memory takes sizes such as \`512M\`, \`2G\`, \`1536MiB\`, or a number of MiB; at least 64M, whole MiB. Paths must be
absolute; the kernel, initramfs and disks must exist as files, shares as directories; the kernel must be an image
Cloud Hypervisor boots (an x86-64 ELF vmlinux with a PVH entry note, or a bzImage); \`network.queues\` may not exceed
\`cpus\`; the VMM binary must answer \`--version\` like cloud-hypervisor. All of this is checked before anything is
created.

## JSON output

${jsonShapes}

## \`myhv demo\`

Runs as root, in a fresh network namespace \`myhv-demo-<pid>\` with its own directory \`/run/myhv-demo-<pid>\` (state,
sockets, a shared folder, and unless \`--kernel\` is given the probe guest: a 600-byte PVH kernel that prints
three lines on the serial port and halts, so a real cloud-hypervisor boots a real guest). With no VMM configured or
on \`PATH\` it falls back to the simulator, and its first line says so. It checks first that the VMM
answers like cloud-hypervisor (exit 2 otherwise, nothing made), then creates the bridge
\`myhvbr0\` (10.62.0.1/24) and two VMs, each with a port forward (8080 and 8081 to port 80) and the shared folder,
shows \`vm ls\`, \`vm inspect\` and (with the probe guest) the first VM's serial log, where the guest printed the
command line it received, stops and removes them, deletes the namespace and the directory, and prints the
timings. A host without usable KVM fails at the first VM's VMM (exit 1, saying so). Ctrl-C at any point removes
everything and exits 130. If a demo was killed outright (SIGKILL), \`myhv gc\` removes what it left.
`;
}
