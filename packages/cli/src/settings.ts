/**
 * The host settings every command shares, each settable by flag, environment variable and config file key.
 * The single table the option parser, the config loader and docs/cli.md are generated from.
 */
export interface SettingDefinition {
  /** Config file key and the property of `CliConfig`. */
  readonly key: SettingKey;
  /** The global flag, with its value placeholder. */
  readonly flag: string;
  readonly env: string;
  /** Default when no flag, variable or config key sets it; undefined: unset. */
  readonly defaultValue?: string;
  readonly description: string;
}

/** The name of one host setting (`stateDir`, `runDir`, `netBackend`, …). */
export type SettingKey =
  | 'stateDir'
  | 'runDir'
  | 'netBackend'
  | 'nat'
  | 'mosnetSocket'
  | 'netns'
  | 'bridge'
  | 'subnet'
  | 'vmmBinary'
  | 'confinement'
  | 'confinementUserfaultfd'
  | 'vmmStandby'
  | 'daemonSocket'
  | 'cluster';

/** Every host setting with its flag, environment variable, config key and default, in help order. */
export const settings: readonly SettingDefinition[] = [
  {
    key: 'stateDir',
    flag: '--state-dir <dir>',
    env: 'MYHV_STATE_DIR',
    defaultValue: '/var/lib/myhv',
    description: 'where VM records, logs and IP reservations live',
  },
  {
    key: 'runDir',
    flag: '--run-dir <dir>',
    env: 'MYHV_RUN_DIR',
    defaultValue: '/run/myhv',
    description: 'where sockets live; keep it short (socket paths are limited to 108 bytes)',
  },
  {
    key: 'netBackend',
    flag: '--net-backend <backend>',
    env: 'MYHV_NET_BACKEND',
    defaultValue: 'local',
    description:
      'network backend: local (ip, nft/iptables), mosnet (the mosnet daemon), or namespace (as local, each VM in its own network namespace, isolated, with an egress policy)',
  },
  {
    key: 'nat',
    flag: '--nat <driver>',
    env: 'MYHV_NAT',
    defaultValue: 'nft',
    description: 'port-forward driver of the local and namespace backends: nft or iptables',
  },
  {
    key: 'mosnetSocket',
    flag: '--mosnet-socket <path>',
    env: 'MYHV_MOSNET_SOCKET',
    defaultValue: '/var/run/mosnet.sock',
    description: "the mosnet daemon's socket (net backend mosnet)",
  },
  {
    key: 'netns',
    flag: '--netns <name>',
    env: 'MYHV_NETNS',
    description: 'run the network and the VMMs inside this named network namespace',
  },
  {
    key: 'bridge',
    flag: '--bridge <name>',
    env: 'MYHV_BRIDGE',
    defaultValue: 'myhvbr0',
    description: 'the bridge VMs join',
  },
  {
    key: 'subnet',
    flag: '--subnet <cidr>',
    env: 'MYHV_SUBNET',
    defaultValue: '10.62.0.0/24',
    description: 'the IPv4 subnet VMs get addresses from (gateway = network + 1)',
  },
  {
    key: 'vmmBinary',
    flag: '--vmm-binary <path>',
    env: 'MYHV_CLOUD_HYPERVISOR',
    description:
      'the cloud-hypervisor binary, or "simulator" (the bundled simulator: it speaks the API, no guest runs); default: cloud-hypervisor on PATH, else commands that start a VMM fail (exit 1)',
  },
  {
    key: 'confinement',
    flag: '--confinement <mode>',
    env: 'MYHV_CONFINEMENT',
    defaultValue: 'auto',
    description:
      'least privilege for VMMs: auto (as root, each VMM runs as a uid of its own with no capabilities, no_new_privs, Landlock and a cgroup with its limits, where the host can), on (refuse to start a VMM unconfined) or off',
  },
  {
    key: 'confinementUserfaultfd',
    flag: '--confinement-userfaultfd <mode>',
    env: 'MYHV_CONFINEMENT_USERFAULTFD',
    defaultValue: 'off',
    description:
      'on or off. On: each confined VMM gets a /dev/userfaultfd of its own, so `vm restore` loads memory on demand instead of copying it first; it also lets a compromised VMM handle kernel page faults (an exploit aid), hence off by default (needs Linux 6.1+)',
  },
  {
    key: 'vmmStandby',
    flag: '--vmm-standby <mode>',
    env: 'MYHV_VMM_STANDBY',
    defaultValue: 'off',
    description:
      'on or off. On: each running VM with a snapshot (and no shares) keeps an idle VMM ready, started after each start or restore, so `vm restore` skips starting one (tens of ms); it costs an idle VMM (~6 MB) and a held serial relay (~58 MB) per such VM',
  },
  {
    key: 'daemonSocket',
    flag: '--daemon-socket <path>',
    env: 'MYHV_DAEMON_SOCKET',
    description:
      "myhvd's socket: where `myhv daemon run` listens and `myhv daemon status` asks (default: <run dir>/myhvd.sock)",
  },
  {
    key: 'cluster',
    flag: '--cluster <etcd=URL[,URL…]>',
    env: 'MYHV_CLUSTER',
    description:
      "the cluster's etcd endpoints (ADR 016): `myhv daemon run` joins this host to the cluster; vm create|ls|inspect|rm|start|stop and `cluster hosts` then work fleet-wide",
  },
];

/** The name of a setting only the config file sets (`allowedVmmBinaries`). */
export type ConfigFileSettingKey = 'allowedVmmBinaries';

/**
 * Settings only the config file sets, with no flag or variable: root's policy for every invocation, not a choice
 * of one (a record naming a binary is data, and whoever could write it should not pick what root runs).
 */
export const configFileSettings: readonly {
  readonly key: ConfigFileSettingKey;
  readonly description: string;
}[] = [
  {
    key: 'allowedVmmBinaries',
    description:
      'the binaries a spec file (or a stored VM record) may name as `vmm.binary`, besides the chosen VMM: ' +
      'a YAML list of absolute paths, or one comma-separated string; default none',
  },
];

/** `--state-dir <dir>` → `--state-dir`. */
export function flagName(definition: SettingDefinition): string {
  return definition.flag.split(' ')[0]!;
}
