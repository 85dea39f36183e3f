import type { CommandResult, CommandRunner, CommandRunOptions } from '../src/index.js';

/** One command a FakeHost ran, as LocalOps passed it. */
export interface RecordedCall {
  readonly file: string;
  readonly args: readonly string[];
  readonly input: string | undefined;
}

export interface FakeLink {
  name: string;
  kind: 'bridge' | 'tun' | 'veth' | undefined;
  multiQueue: boolean;
  mtu: number;
  up: boolean;
  master?: string;
  /** Hairpin mode of a bridge port (`type bridge_slave hairpin on`). */
  hairpin?: boolean;
  owner?: string;
  /** `ip -details` prints the owner's names, as it does where the ids have names; else the ids. */
  ownerNamed?: boolean;
  addresses: { family: 'inet' | 'inet6'; local: string; prefixlen: number; scope: string }[];
}

export interface FakeForward {
  protocol: string;
  port: number;
  guestIp: string;
  guestPort: number;
  comment?: string;
}

type Override = (call: RecordedCall) => Partial<CommandResult> | Error | undefined;

const ok = (stdout = ''): CommandResult => ({ exitCode: 0, stdout, stderr: '' });

/**
 * A pretend host for unit tests: a small model of what `ip`, `nft`, `sysctl` and `iptables-*` would do, with the
 * error texts and exit codes the real tools print, and a record of every call (argv and stdin). Enough of each tool
 * to run LocalOps' logic without root; the integration tests check the real thing.
 */
export class FakeHost {
  readonly calls: RecordedCall[] = [];
  readonly links = new Map<string, FakeLink>();
  readonly sysctls = new Map<string, string>([['net.ipv4.ip_forward', '0']]);
  readonly forwards = new Map<string, FakeForward>();
  nftTable = false;
  iptablesSave = '';
  /** Answers a call before the model does (a failure to inject, a tool to make missing). */
  override: Override | undefined;

  readonly runner: CommandRunner = async (file, args, options: CommandRunOptions = {}) => {
    const call = { file, args: [...args], input: options.input };
    this.calls.push(call);
    await new Promise((resolve) => setImmediate(resolve));
    const injected = this.override?.(call);
    if (injected instanceof Error) throw injected;
    if (injected) return { exitCode: 0, stdout: '', stderr: '', ...injected };
    return this.#dispatch(call);
  };

  /** Calls whose program (after `ip netns exec NS`) is `program`. */
  callsOf(program: string): RecordedCall[] {
    return this.calls.filter((c) => programOf(c) === program);
  }

  /** The stdin lines of a batch call. */
  static lines(call: RecordedCall | undefined): string[] {
    return (call?.input ?? '').split('\n').filter((l) => l !== '');
  }

  addLink(link: Partial<FakeLink> & { name: string }): FakeLink {
    const full: FakeLink = {
      kind: undefined,
      multiQueue: false,
      mtu: 1500,
      up: false,
      addresses: [],
      ...link,
    };
    this.links.set(full.name, full);
    return full;
  }

  #dispatch(call: RecordedCall): CommandResult {
    const program = programOf(call);
    const args = argsOf(call);
    if (program === 'ip') {
      if (args.includes('-batch')) return this.#ipBatch(FakeHost.lines(call));
      const master = args.indexOf('master');
      if (master >= 0) return this.#listMaster(args[master + 1]!);
      return { exitCode: 255, stdout: '', stderr: 'fake ip: unsupported\n' };
    }
    if (program === 'sysctl') return this.#sysctl(args);
    if (program === 'nft') return args[0] === '-f' ? this.#nftScript(FakeHost.lines(call)) : this.#nftList();
    if (program === 'iptables-save') return ok(this.iptablesSave);
    if (program === 'iptables-restore') return ok();
    if (program === 'cat') return this.#catSysfs(args);
    return { exitCode: 127, stdout: '', stderr: `fake: no ${program}\n` };
  }

  /** `cat /sys/class/net/NAME/{owner,group}`: a TAP's owner as sysfs shows it, -1 for none. */
  #catSysfs(paths: string[]): CommandResult {
    let stdout = '';
    for (const path of paths) {
      const [, name, file] = /^\/sys\/class\/net\/([^/]+)\/(owner|group)$/.exec(path) ?? [];
      const link = name === undefined ? undefined : this.links.get(name);
      if (link?.kind !== 'tun') {
        return { exitCode: 1, stdout, stderr: `cat: ${path}: No such file or directory\n` };
      }
      const [uid, gid] = link.owner?.split(':') ?? ['-1', '-1'];
      stdout += `${file === 'owner' ? uid : gid}\n`;
    }
    return ok(stdout);
  }

  #listMaster(bridge: string): CommandResult {
    if (!this.links.has(bridge)) {
      return {
        exitCode: 255,
        stdout: '',
        stderr: `Error: argument "${bridge}" is wrong: Device does not exist\n`,
      };
    }
    const ports = [...this.links.values()].filter((l) => l.master === bridge);
    return ok(`${JSON.stringify(ports.map(linkJson))}\n`);
  }

  #ipBatch(lines: string[]): CommandResult {
    let stdout = '';
    let stderr = '';
    let failed = false;
    for (const [i, line] of lines.entries()) {
      const words = line.split(' ');
      const fail = (text: string) => {
        stderr += `${text}\nCommand failed -:${i + 1}\n`;
        failed = true;
      };
      const [object, verb] = words;
      const name = words[(words.includes('dev') ? words.indexOf('dev') : words.indexOf('name')) + 1]!;
      const link = this.links.get(name);
      if (verb === 'show') {
        if (!link) fail(`Device "${name}" does not exist.`);
        else stdout += `${JSON.stringify([linkJson(link)])}\n`;
      } else if (object === 'link' && verb === 'add') {
        if (link) fail('RTNETLINK answers: File exists');
        else this.addLink({ name, kind: 'bridge' });
      } else if (object === 'tuntap') {
        if (link) fail('ioctl(TUNSETIFF): Device or resource busy');
        else {
          const user = words.indexOf('user');
          this.addLink({
            name,
            kind: 'tun',
            multiQueue: words.includes('multi_queue'),
            ...(user >= 0 ? { owner: `${words[user + 1]}:${words[words.indexOf('group') + 1]}` } : {}),
          });
        }
      } else if (object === 'link' && verb === 'set') {
        const master = words.indexOf('master');
        if (master >= 0 && !this.links.has(words[master + 1]!)) {
          // ip resolves `master` while parsing and ends the whole batch.
          return {
            exitCode: 255,
            stdout,
            stderr: `${stderr}Error: argument "${words[master + 1]}" is wrong: Device does not exist\n`,
          };
        }
        if (!link) fail(`Cannot find device "${name}"`);
        else {
          const mtu = words.indexOf('mtu');
          if (mtu >= 0) link.mtu = Number(words[mtu + 1]);
          if (master >= 0) link.master = words[master + 1]!;
          if (words.includes('up')) link.up = true;
          const hairpin = words.indexOf('hairpin');
          if (hairpin >= 0) link.hairpin = words[hairpin + 1] === 'on';
        }
      } else if (object === 'link' && verb === 'del') {
        if (!link) fail(`Cannot find device "${name}"`);
        else {
          this.links.delete(name);
          for (const l of this.links.values()) if (l.master === name) delete l.master;
        }
      } else if (object === 'addr') {
        if (!link) fail(`Cannot find device "${name}"`);
        else {
          const [local, prefix] = words[2]!.split('/');
          const family = local!.includes(':') ? 'inet6' : 'inet';
          link.addresses = link.addresses.filter((a) => a.local !== local);
          if (verb === 'replace')
            link.addresses.push({ family, local: local!, prefixlen: Number(prefix), scope: 'global' });
        }
      } else {
        fail(`fake ip: cannot do ${line}`);
      }
    }
    return { exitCode: failed ? 1 : 0, stdout, stderr };
  }

  #sysctl(args: string[]): CommandResult {
    const printed = (key: string) =>
      key
        .split('/')
        .map((p) => p.replaceAll('.', '/'))
        .join('.');
    if (args[0] === '-w') {
      for (const setting of args.slice(1)) {
        const [key, value] = setting.split('=');
        this.sysctls.set(printed(key!), value!);
      }
      return ok();
    }
    const keys = args.filter((a) => a !== '-e').map(printed);
    return ok(keys.flatMap((k) => (this.sysctls.has(k) ? [`${k} = ${this.sysctls.get(k)}\n`] : [])).join(''));
  }

  #nftScript(lines: string[]): CommandResult {
    let stderr = '';
    const next = new Map(this.forwards);
    let table = this.nftTable;
    for (const [i, line] of lines.entries()) {
      if (line.startsWith('add table')) table = true;
      const create =
        /^create element inet \w+ forwards \{ (\w+) \. (\d+)(?: comment "([^"]*)")? : ([\d.]+) \. (\d+) \}$/.exec(
          line,
        );
      const remove = /^delete element inet \w+ forwards \{ (\w+) \. (\d+) \}$/.exec(line);
      const at = `/dev/stdin:${i + 1}:1-${line.length}: Error: `;
      if ((create || remove) && !table) stderr += `${at}No such file or directory\n${line}\n`;
      else if (create) {
        const key = `${create[1]}/${create[2]}`;
        if (next.has(key)) stderr += `${at}Could not process rule: File exists\n${line}\n`;
        else
          next.set(key, {
            protocol: create[1]!,
            port: Number(create[2]),
            guestIp: create[4]!,
            guestPort: Number(create[5]),
            ...(create[3] === undefined ? {} : { comment: create[3] }),
          });
      } else if (remove) {
        const key = `${remove[1]}/${remove[2]}`;
        if (!next.delete(key)) stderr += `${at}Could not process rule: No such file or directory\n${line}\n`;
      }
    }
    if (stderr !== '') return { exitCode: 1, stdout: '', stderr };
    this.nftTable = table;
    this.forwards.clear();
    for (const [k, v] of next) this.forwards.set(k, v);
    return ok();
  }

  #nftList(): CommandResult {
    if (!this.nftTable) return { exitCode: 1, stdout: '', stderr: 'Error: No such file or directory\n' };
    const elem = [...this.forwards.values()].map((f) => {
      const key = { concat: [f.protocol, f.port] };
      return [
        f.comment === undefined ? key : { elem: { val: key, comment: f.comment } },
        { concat: [f.guestIp, f.guestPort] },
      ];
    });
    const maps = [
      { map: { family: 'inet', name: 'forwards', table: 'myhv', ...(elem.length ? { elem } : {}) } },
      { map: { family: 'inet', name: 'host_forwards', table: 'myhv' } },
    ];
    return ok(JSON.stringify({ nftables: [{ metainfo: { version: '1.0.6' } }, ...maps] }));
  }
}

/** The program a call runs, looking through `ip netns exec NS`. */
export function programOf(call: RecordedCall): string {
  return call.file === 'ip' && call.args[0] === 'netns' && call.args[1] === 'exec'
    ? call.args[3]!
    : call.file;
}

function argsOf(call: RecordedCall): string[] {
  if (call.file === 'ip' && call.args[0] === 'netns' && call.args[1] === 'exec') return call.args.slice(4);
  if (call.file === 'ip' && call.args[0] === '-n') return call.args.slice(2);
  return [...call.args];
}

/** A TAP's owner as `ip -details -json` prints it: no fields for none, names where known, else numbers. */
function ownerJson(link: FakeLink): { user?: number | string; group?: number | string } {
  if (link.owner === undefined) return {};
  const [uid, gid] = link.owner.split(':').map(Number);
  return link.ownerNamed ? { user: `user${uid}`, group: `group${gid}` } : { user: uid!, group: gid! };
}

function linkJson(link: FakeLink) {
  return {
    ifname: link.name,
    flags: link.up ? ['BROADCAST', 'MULTICAST', 'UP'] : ['BROADCAST', 'MULTICAST'],
    mtu: link.mtu,
    ...(link.master ? { master: link.master } : {}),
    ...(link.kind
      ? {
          linkinfo: {
            info_kind: link.kind,
            ...(link.kind === 'tun'
              ? { info_data: { type: 'tap', multi_queue: link.multiQueue, ...ownerJson(link) } }
              : {}),
            ...(link.master
              ? { info_slave_kind: 'bridge', info_slave_data: { hairpin: link.hairpin === true } }
              : {}),
          },
        }
      : {}),
    addr_info: link.addresses,
  };
}
