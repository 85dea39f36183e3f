import { Command, Option } from 'commander';
import { settings } from './settings.js';
import { VERSION } from './version.js';

/** Identifies a leaf command: `vm create`, `forward ls`, `doctor`, … */
export type CommandId =
  | 'vm create'
  | 'vm start'
  | 'vm stop'
  | 'vm restart'
  | 'vm rm'
  | 'vm ls'
  | 'vm inspect'
  | 'vm pause'
  | 'vm resume'
  | 'vm logs'
  | 'vm console'
  | 'vm resize'
  | 'vm stats'
  | 'vm snapshot'
  | 'vm snapshot ls'
  | 'vm snapshot rm'
  | 'vm restore'
  | 'vm disk add'
  | 'vm disk rm'
  | 'vm disk ls'
  | 'vm share add'
  | 'vm share rm'
  | 'vm share ls'
  | 'vm nic add'
  | 'vm nic rm'
  | 'vm nic ls'
  | 'forward add'
  | 'forward rm'
  | 'forward ls'
  | 'image build'
  | 'image ls'
  | 'image inspect'
  | 'image rm'
  | 'net ls'
  | 'net inspect'
  | 'net create'
  | 'net rm'
  | 'net ensure'
  | 'events'
  | 'doctor'
  | 'gc'
  | 'autostart'
  | 'demo'
  | 'daemon run'
  | 'daemon status'
  | 'dashboard url'
  | 'cluster hosts'
  | 'version';

/** What a leaf command's action hands to the runner: its id, positional arguments and the command itself. */
export type Invoke = (id: CommandId, args: readonly unknown[], command: Command) => Promise<void>;

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** `--wait-ready [--ready-timeout D]` of the commands that boot a VM. */
function withReadyWait(command: Command): Command {
  return command
    .option(
      '--wait-ready',
      "then wait until the guest's init says it is ready (a VM made from an image); prints its address and mounted shares",
    )
    .addOption(
      new Option(
        '--ready-timeout <duration>',
        'how long --wait-ready waits, e.g. 90s, 2m (default 60s); on timeout exit 1, the VM keeps running',
      ).implies({ waitReady: true }),
    );
}

/**
 * The myhv command tree: names, arguments, options and help, but no behaviour — each leaf calls `invoke`, which
 * loads its implementation on demand (so `myhv version` loads none of them). docs/cli.md is generated from it.
 */
export function createProgram(invoke: Invoke): Command {
  const program = new Command('myhv')
    .description('Run Cloud Hypervisor microVMs on this host.')
    .version(`myhv ${VERSION}`, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .option('--json', 'print one JSON document on stdout (shapes in docs/cli.md); errors as JSON on stderr')
    .option('--debug', 'on failure, also print the cause chain, commands and their output')
    .option('--no-daemon', 'run VM commands in this process even when myhvd answers on its socket')
    .option('--config <file>', 'config file (default: MYHV_CONFIG, else /etc/myhv/config.yaml if present)');
  for (const s of settings) {
    // Only the flag is parsed here: resolveConfig applies flag > environment > config file > default.
    const where = s.defaultValue === undefined ? `env ${s.env}` : `env ${s.env}, default ${s.defaultValue}`;
    program.addOption(new Option(s.flag, `${s.description} [${where}]`));
  }
  program.addHelpText(
    'after',
    '\nEnvironment: MYHV_CONFIG, MYHV_STATE_DIR, MYHV_RUN_DIR, MYHV_NET_BACKEND, MYHV_NAT, MYHV_MOSNET_SOCKET, MYHV_NETNS,\n' +
      'MYHV_BRIDGE, MYHV_SUBNET, MYHV_CLOUD_HYPERVISOR, NO_COLOR. Precedence: flag > environment > config file > default.\n' +
      'Exit codes: 0 ok, 1 operation failed (or not found), 2 bad input, 130 interrupted.',
  );

  const leaf = (parent: Command, name: string, id: CommandId, description: string) =>
    parent
      .command(name)
      .description(description)
      .action(async (...all: unknown[]) => {
        const command = all.at(-1) as Command;
        await invoke(id, all.slice(0, -2), command);
      });

  const vm = program.command('vm').description('create and run VMs');
  const create = leaf(vm, 'create', 'vm create', 'create and boot a VM from flags or a spec file')
    .argument('[name]', 'the VM name (letters, digits, _ . -; up to 63); or give it in the spec file')
    .option('-f, --file <path>', 'a VmSpec in YAML or JSON ("-" reads stdin); not combined with spec flags')
    .option(
      '--kernel <path>',
      'kernel image to boot (vmlinux or bzImage); without it and --image, the image default if built',
    )
    .option('--initramfs <path>', 'initramfs image')
    .option(
      '--image <name>',
      'boot an image from `myhv image build` (its kernel and initramfs); its init sets up the network and shares',
    )
    .option(
      '--command <cmd>',
      'with --image: what the guest runs (sh -c) once ready; it powers off when the command ends (default: a shell on the console)',
    )
    .option('--cmdline <text>', 'kernel command line; the VM address is appended')
    .option('--cpus <n>', 'vCPUs (1–254)')
    .option('--memory <size>', 'memory, e.g. 512M, 2G (at least 64M)')
    .option(
      '--disk <path[:ro]>',
      'a disk image, read-only with :ro (:rw, the default, may be written); repeat',
      collect,
    )
    .option(
      '--share <dir:tag[:ro][:/guest/path]>',
      'share a host directory over virtio-fs under a tag, read-only with :ro (or :rw); a VM made from an image mounts it at /guest/path; repeat for more',
      collect,
    )
    .option(
      '-p, --forward <[hostIp:]hostPort:guestPort[/proto]>',
      'forward a host port to the VM; repeat',
      collect,
    )
    .option('--queues <n>', 'network queue pairs (1–16, at most --cpus)')
    .option('--network <name>', 'the network to join (see `myhv net create`); default: the default network')
    .option('--no-network', 'no network interface (no address, no forwards)')
    .option(
      '--isolation <mode>',
      'vm or none. vm: the VM reaches no other VM and no host address but its gateway (DNS, ping); none: a plain bridge. Default: vm on the namespace backend; other backends take only none',
    )
    .option(
      '--egress <policy>',
      'where the VM may send traffic beyond its subnet: allow-all (default), deny-all, or rules CIDR[:tcp|udp|icmp][:PORT[+PORT…]] separated by commas (a bare address is a /32; ports without a protocol: tcp and udp), e.g. 10.0.0.0/8,192.0.2.10:tcp:80+443; repeat to add rules. Needs the namespace backend',
      collect,
    )
    .option(
      '--restart <policy>',
      'no (default); on-boot: `myhv autostart` starts it after a host reboot; always: also myhvd, whenever its VMM dies',
    )
    .option(
      '--cpu-limit <cpus>',
      'CPU time its VMM and virtiofsd may use, in CPUs (e.g. 1.5); default its most vCPUs + 1. Enforced by its cgroup when confined (--confinement)',
    )
    .option(
      '--memory-limit <size>',
      "memory of its VMM and virtiofsd together, above the guest's (e.g. 1G); default the guest's + 256M",
    )
    .option('--pids-limit <n>', 'processes and threads of its VMM and virtiofsd; default 512')
    .option('--vmm-arg <arg>', 'an extra cloud-hypervisor argument; repeat for more', collect)
    .option('--label <key=value>', 'tag the VM (shown by `vm inspect`); repeat for more', collect)
    .option(
      '--placement <policy>',
      'with --cluster: spread (default: the host with the most free memory) or pack (the fullest host that fits)',
    )
    .option(
      '--on-host <label=value>',
      'with --cluster: only hosts with this label (`myhvd --host-label`); repeat: all of them',
      collect,
    )
    .option(
      '--stopped',
      'with --cluster: create it stopped (`vm start` boots it); without --cluster every VM boots',
    );
  withReadyWait(create);
  withReadyWait(leaf(vm, 'start', 'vm start', 'boot a stopped VM').argument('<name>', 'the VM'));
  leaf(vm, 'stop', 'vm stop', 'stop a VM (power button, then harder); its address and forwards stay')
    .argument('<name>', 'the VM')
    .option('-t, --timeout <seconds>', 'how long the guest gets to power off before harder stops', '5');
  leaf(vm, 'restart', 'vm restart', 'stop, then start a VM')
    .argument('<name>', 'the VM')
    .option('-t, --timeout <seconds>', 'how long the guest gets to power off before harder stops', '5');
  leaf(vm, 'rm', 'vm rm', 'delete VMs and everything they own (address, TAP, forwards, logs)')
    .alias('remove')
    .argument('<names...>', 'the VMs')
    .option('-f, --force', 'stop running VMs first');
  leaf(vm, 'ls', 'vm ls', 'list VMs (reads state only: spawns nothing)').alias('list');
  leaf(vm, 'inspect', 'vm inspect', 'show everything about a VM').argument('<name>', 'the VM');
  leaf(vm, 'pause', 'vm pause', 'pause a running VM').argument('<name>', 'the VM');
  leaf(vm, 'resume', 'vm resume', 'resume a paused VM').argument('<name>', 'the VM');
  leaf(vm, 'console', 'vm console', "attach to a running VM's serial console (detach: Ctrl-])").argument(
    '<name>',
    'the VM',
  );
  leaf(vm, 'logs', 'vm logs', "print a VM's serial console log (or its VMM log)")
    .argument('<name>', 'the VM')
    .option('--vmm', "the VMM's own log instead of the serial console")
    .option('-n, --tail <lines>', 'only the last lines')
    .option(
      '-f, --follow',
      'keep printing new lines until interrupted, or the VM is removed (exit 0); -F works too',
    )
    // -F was the short flag before docker's -f; it keeps working, without a second line in the help.
    .addOption(new Option('-F').hideHelp().implies({ follow: true }));

  leaf(vm, 'resize', 'vm resize', "hot-plug vCPUs or memory into a running VM (up to its spec's maximums)")
    .argument('<name>', 'the VM')
    .option('--cpus <n>', "vCPUs, at most the spec's cpusMax; fewer need the guest to eject them (ACPI)")
    .option('--memory <size>', 'memory, e.g. 1G: only more, in 128M steps, up to memory + memoryHotplug');
  leaf(vm, 'stats', 'vm stats', "a running VM's device counters and the CPU time and RSS of its processes")
    .argument('<name>', 'the VM')
    .option('-w, --watch', 'print per-second rates every interval until interrupted or the VM stops')
    .option('--interval <seconds>', 'seconds between samples with --watch (0.1–3600)', '2');

  // `vm snapshot NAME` takes the snapshot; `vm snapshot ls|rm` manage them (a VM named ls or rm needs the API).
  const snapshot = leaf(
    vm,
    'snapshot',
    'vm snapshot',
    'pause a VM, snapshot it to disk, resume it; ls and rm manage snapshots',
  )
    .argument('<name>', 'the VM')
    .option(
      '--to <dir>',
      "an absolute directory (only root may write it) instead of the VM's state directory",
    )
    .option('--leave-paused', 'leave the VM paused after the snapshot');
  leaf(snapshot, 'ls', 'vm snapshot ls', "list a VM's snapshots (reads state only)")
    .alias('list')
    .argument('<name>', 'the VM');
  leaf(snapshot, 'rm', 'vm snapshot rm', "delete one of a VM's snapshots")
    .argument('<name>', 'the VM')
    .argument('<snapshot>', 'the snapshot id (`myhv vm snapshot ls NAME`)');
  leaf(
    vm,
    'restore',
    'vm restore',
    'restore a VM from a snapshot: stops it if running, then resumes the snapshot',
  )
    .argument('<name>', 'the VM')
    .option('--from <snapshot>', 'the snapshot id (default: the latest)');

  // Hot-plug: a running VM gets the device now; the spec keeps it, so every later boot has it.
  const disk = vm.command('disk').description("add or remove a VM's disks (running or stopped)");
  leaf(disk, 'add', 'vm disk add', 'add a disk image or block device (hot-plugged when the VM runs)')
    .argument('<name>', 'the VM')
    .argument('<disk>', 'PATH[:ro], e.g. /var/lib/images/data.img:ro');
  leaf(disk, 'rm', 'vm disk rm', 'remove a disk')
    .alias('remove')
    .argument('<name>', 'the VM')
    .argument('<id>', 'the disk id (`myhv vm disk ls NAME`) or its path');
  leaf(disk, 'ls', 'vm disk ls', "list a VM's disks with their ids (reads state only)")
    .alias('list')
    .argument('<name>', 'the VM');
  const share = vm.command('share').description("add or remove a VM's shared folders (virtiofs)");
  leaf(share, 'add', 'vm share add', 'share a host folder (hot-plugged if the VM was booted with shares)')
    .argument('<name>', 'the VM')
    .argument(
      '<share>',
      'DIR:TAG[:ro|rw][:/guest/path], e.g. /srv/data:data:ro (the guest mounts TAG; our init at /guest/path from the next boot)',
    );
  leaf(share, 'rm', 'vm share rm', 'remove a shared folder and stop its virtiofsd')
    .alias('remove')
    .argument('<name>', 'the VM')
    .argument('<tag>', 'the share tag');
  leaf(share, 'ls', 'vm share ls', "list a VM's shared folders (reads state only)")
    .alias('list')
    .argument('<name>', 'the VM');
  const nic = vm
    .command('nic')
    .description(
      "add or remove a VM's network interfaces beyond its first (same network, own TAP and address)",
    );
  leaf(
    nic,
    'add',
    'vm nic add',
    "add a NIC on the VM's network (hot-plugged when the VM runs); ids nic1 … nic8",
  )
    .argument('<name>', 'the VM')
    .option('--mac <mac>', 'its MAC address (unicast); derived from the VM and the NIC id when omitted');
  leaf(nic, 'rm', 'vm nic rm', 'remove a NIC: its TAP and address go too')
    .alias('remove')
    .argument('<name>', 'the VM')
    .argument('<id>', 'the NIC id (`myhv vm nic ls NAME`)');
  leaf(nic, 'ls', 'vm nic ls', "list a VM's extra NICs with their TAPs and addresses (reads state only)")
    .alias('list')
    .argument('<name>', 'the VM');

  const image = program
    .command('image')
    .description('guest images: a kernel and an initramfs whose init sets up network, shares and a command');
  leaf(
    image,
    'build',
    'image build',
    'build an image from the Debian kernel package and busybox (downloads with apt-get; unchanged inputs: no-op)',
  )
    .argument('[name]', 'the image name (lowercase letters, digits, -; up to 32)', 'default')
    .option('--kernel-package <pkg>', 'the Debian kernel package (default: linux-image-amd64)')
    .option('--force', 'rebuild even when the inputs are unchanged');
  leaf(image, 'ls', 'image ls', 'list the images (and any broken image directory)').alias('list');
  leaf(
    image,
    'inspect',
    'image inspect',
    "show an image's files, manifest and the VMs made from it",
  ).argument('<name>', 'the image');
  leaf(image, 'rm', 'image rm', 'delete an image (refused while a VM was made from it)')
    .alias('remove')
    .argument('<name>', 'the image')
    .option('-f, --force', 'delete it even though VMs were made from it (they cannot start again)');

  const forward = program.command('forward').description('port forwards from the host to VMs');
  leaf(forward, 'add', 'forward add', 'forward a host port to a VM (kept across stop/start)')
    .argument('<vm>', 'the VM')
    .argument('<forward>', '[hostIp:]hostPort:guestPort[/tcp|udp], e.g. 8080:80 or 127.0.0.1:5353:53/udp');
  leaf(forward, 'rm', 'forward rm', "remove a VM's port forward")
    .alias('remove')
    .argument('<vm>', 'the VM')
    .argument('<hostPort>', 'hostPort[/tcp|udp], e.g. 8080 or 5353/udp');
  leaf(forward, 'ls', 'forward ls', 'list port forwards (of one VM, or all)')
    .alias('list')
    .argument('[vm]', 'only this VM');

  const net = program.command('net').description('the networks VMs join (a bridge and a subnet each)');
  leaf(net, 'ls', 'net ls', 'list the networks: bridge, subnet, gateway, backend, VMs').alias('list');
  leaf(
    net,
    'inspect',
    'net inspect',
    "show a network: its record, its bridge's ports and forwards, with the VMs owning them",
  ).argument('[name]', 'the network (default: default)');
  leaf(net, 'create', 'net create', 'make a named network (vm create --network NAME joins it)')
    .argument('<name>', 'the network name (1–15 lowercase letters, digits, -)')
    .option('--subnet <cidr>', 'its IPv4 subnet, e.g. 10.63.0.0/24 (must not overlap another network)')
    .option('--bridge <name>', 'its bridge (default: myhv-NAME)');
  leaf(net, 'rm', 'net rm', 'forget a network no VM uses (its bridge stays)')
    .alias('remove')
    .argument('<name>', 'the network');
  leaf(
    net,
    'ensure',
    'net ensure',
    "create every network's bridge with its gateway address if missing (idempotent)",
  );

  leaf(
    program,
    'events',
    'events',
    'lifecycle events of every myhv process and VMM on this host, oldest first',
  )
    .option('--vm <name>', 'only this VM')
    .option(
      '--since <time>',
      'only events from then on: an ISO time, Unix seconds, or a duration before now (10m)',
    )
    .option('--until <time>', 'only events up to then (ends --follow when it passes)')
    .option('-f, --follow', 'then keep printing new events until interrupted');
  leaf(
    program,
    'doctor',
    'doctor',
    'check the host: KVM, cloud-hypervisor, a probe guest boot, virtiofsd, nft/iptables, …',
  );
  leaf(program, 'gc', 'gc', 'repair drift: finish or roll back interrupted work, remove what no VM owns');
  leaf(
    program,
    'autostart',
    'autostart',
    'after a host reboot: repair (as gc), then start every VM with --restart on-boot or always (the systemd unit runs it)',
  );
  leaf(program, 'demo', 'demo', 'run a whole VM lifecycle in a throwaway network namespace, then clean up')
    .option('--kernel <path>', 'kernel to boot (default: the probe guest, a tiny kernel the demo writes)')
    .option('--initramfs <path>', 'initramfs to boot with --kernel');
  const daemon = program
    .command('daemon')
    .description(
      'myhvd: the VM manager as a long-running daemon with a JSON-RPC API (`myhvd` runs `daemon run`)',
    );
  leaf(
    daemon,
    'run',
    'daemon run',
    'serve the VM manager on the daemon socket until SIGINT/SIGTERM: reconcile first, then watch the VMMs (VMs keep running when it stops)',
  )
    .option('--group <name>', 'also let this group connect (socket mode 0660); default: root only (0600)')
    .option('--watch-interval <ms>', 'how often to look for VMMs that died (0: never); default 2000')
    .option(
      '--drift-interval <ms>',
      'how often to look for network pieces deleted behind its back and put them back (0: never); default 30000',
    )
    .option('--no-reconcile', 'do not repair drift before listening')
    .option(
      '--dashboard <[host:]port>',
      'also serve the web dashboard on this TCP port (host default 127.0.0.1; any other host needs the TLS options); log in with `myhv dashboard url`',
    )
    .option('--dashboard-tls-cert <file>', 'serve the dashboard over HTTPS with this certificate (PEM)')
    .option('--dashboard-tls-key <file>', "the certificate's private key (PEM)")
    .option(
      '--host-id <id>',
      'with --cluster: this host in the cluster (letters, digits, . _ -; up to 63); default the hostname',
    )
    .option(
      '--host-address <address>',
      'with --cluster: where others can reach this host (informative); default the hostname',
    )
    .option(
      '--host-label <key=value>',
      'with --cluster: a label VMs can ask for (`vm create --on-host`); repeat for more',
      collect,
    )
    .option(
      '--host-vcpus <n>',
      'with --cluster: the vCPUs this host offers VMs (placement puts no more on it); default 4 per CPU',
    )
    .option(
      '--cluster-pool <cidr>',
      "with --cluster: the pool each host's VM subnet (a /24) is taken from; default 10.80.0.0/12",
    )
    .option(
      '--cluster-concurrency <n>',
      'with --cluster: how many cluster VMs this host creates, starts, stops or deletes at once (1–299); default 16',
    )
    .option(
      '--cluster-ttl <seconds>',
      "with --cluster: this host's lease; silent that long, its VMs are re-placed (2–3600); default 10",
    );
  leaf(
    daemon,
    'status',
    'daemon status',
    'whether myhvd answers on its socket: version, pid, uptime, VMs, watcher',
  );
  const dashboard = program
    .command('dashboard')
    .description("myhvd's web dashboard (served with `myhvd --dashboard PORT`)");
  leaf(
    dashboard,
    'url',
    'dashboard url',
    'print a one-time login link for the dashboard (valid 60 s, used once); asks myhvd over its socket',
  );
  const cluster = program
    .command('cluster')
    .description('the hosts of a cluster (`--cluster etcd=URL`; each runs `myhvd --cluster …`)');
  leaf(
    cluster,
    'hosts',
    'cluster hosts',
    'list the live hosts: address, subnet, capacity, VMs placed, lease time left, labels',
  );
  leaf(program, 'version', 'version', 'print the version');
  return program;
}
