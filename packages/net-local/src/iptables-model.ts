import {
  type Ipv4Cidr,
  NetOpsError,
  type PortForwardRule,
  parsePortForwardRule,
  portForwardKey,
} from '@my-hypervisor/net-ops';

export type IptablesTable = 'nat' | 'filter';
const tables: readonly IptablesTable[] = ['nat', 'filter'];

/** One table of `iptables-save` output: chain → policy (`-` for user chains) and the `-A` rule lines, in order. */
export interface SavedTable {
  readonly chains: Map<string, string>;
  readonly rules: string[];
}

/** Parses `iptables-save` output (any tables; comments and counters ignored). */
export function parseIptablesSave(text: string): Map<string, SavedTable> {
  const result = new Map<string, SavedTable>();
  let current: SavedTable | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      current = { chains: new Map(), rules: [] };
      result.set(line.slice(1), current);
    } else if (!current || line === '' || line.startsWith('#') || line === 'COMMIT') {
    } else if (line.startsWith(':')) {
      const [chain, policy] = line.slice(1).split(/\s+/);
      if (chain) current.chains.set(chain, policy ?? '-');
    } else if (line.startsWith('-A ')) {
      current.rules.push(line);
    }
  }
  return result;
}

/** The `--comment` of a saved rule line, unquoted. */
export function commentOf(rule: string): string | undefined {
  const match = /--comment (?:"((?:[^"\\]|\\.)*)"|(\S+))/.exec(rule);
  return match ? (match[1] ?? match[2])!.replace(/\\(.)/g, '$1') : undefined;
}

const chainOf = (rule: string) => rule.split(/\s+/)[1] ?? '';

/** Our chain names (`MYHV-PREROUTING`, …) and the comment tag (`myhv`) every rule we add carries. */
export interface IptablesNames {
  readonly prerouting: string;
  readonly output: string;
  readonly postrouting: string;
  readonly forward: string;
  readonly tag: string;
}

export function iptablesNames(prefix: string): IptablesNames {
  return {
    prerouting: `${prefix}-PREROUTING`,
    output: `${prefix}-OUTPUT`,
    postrouting: `${prefix}-POSTROUTING`,
    forward: `${prefix}-FORWARD`,
    tag: prefix.toLowerCase(),
  };
}

/** An installed forward: the rule as its comment records it, and the saved lines that implement it. */
export interface InstalledForward {
  readonly rule: PortForwardRule;
  readonly lines: readonly { table: IptablesTable; line: string }[];
}

/** Reads a forward back from our comment `tag:fwd:proto:port:guestIp:guestPort:hostIp:owner` (owner may hold `:`). */
export function parseForwardComment(comment: string, tag: string): PortForwardRule | undefined {
  const parts = comment.split(':');
  if (parts[0] !== tag || parts[1] !== 'fwd' || parts.length < 8) return undefined;
  const [, , protocol, hostPort, guestIp, guestPort, hostIp, ...owner] = parts;
  try {
    return parsePortForwardRule({
      protocol,
      hostPort: Number(hostPort),
      guestIp,
      guestPort: Number(guestPort),
      ...(hostIp ? { hostIp } : {}),
      ...(owner.join(':') ? { owner: owner.join(':') } : {}),
    });
  } catch {
    return undefined;
  }
}

export function forwardComment(rule: PortForwardRule, tag: string): string {
  const { protocol, hostPort, guestIp, guestPort } = rule;
  return [tag, 'fwd', protocol, hostPort, guestIp, guestPort, rule.hostIp ?? '', rule.owner ?? ''].join(':');
}

/** The lines one job contributes to each table's section of the restore script. */
export type JobLines = Record<IptablesTable, string[]>;

/**
 * What our chains hold, read from `iptables-save`, plus the lines that bring them to what the jobs of one wave ask
 * for. Each job plans against the state the jobs before it left (so two adds of one port in a wave conflict as they
 * would one after the other); structure (our chains and the jumps to them) is added once, only where missing,
 * because `iptables-restore --noflush` would flush an existing chain that is declared again.
 */
export class IptablesModel {
  readonly names: IptablesNames;
  readonly #saved: Map<string, SavedTable>;
  readonly #chains: Record<IptablesTable, Set<string>>;
  readonly #forwards = new Map<string, InstalledForward>();
  /** Lines of our rules per comment, for bridge rules. */
  readonly #tagged = new Map<string, { table: IptablesTable; line: string }>();
  readonly structure: Record<IptablesTable, { declare: string[]; jump: string[] }> = {
    nat: { declare: [], jump: [] },
    filter: { declare: [], jump: [] },
  };
  #job: JobLines = { nat: [], filter: [] };

  constructor(saved: Map<string, SavedTable>, names: IptablesNames) {
    this.#saved = saved;
    this.names = names;
    this.#chains = { nat: new Set(), filter: new Set() };
    for (const table of tables) {
      const save = saved.get(table);
      if (!save) continue;
      for (const chain of save.chains.keys()) this.#chains[table].add(chain);
      for (const line of save.rules) {
        const comment = commentOf(line);
        if (comment === undefined || !comment.startsWith(`${names.tag}:`)) continue;
        const rule = parseForwardComment(comment, names.tag);
        if (rule) {
          const key = portForwardKey(rule);
          const lines = [...(this.#forwards.get(key)?.lines ?? []), { table, line }];
          this.#forwards.set(key, { rule: this.#forwards.get(key)?.rule ?? rule, lines });
        } else {
          this.#tagged.set(`${table} ${comment}`, { table, line });
        }
      }
    }
  }

  /**
   * True when the built-in filter FORWARD chain can drop forwarded traffic: its policy is DROP (Docker's default)
   * or it ends traffic with a DROP or REJECT rule of its own.
   */
  get forwardDrops(): boolean {
    const filter = this.#saved.get('filter');
    if (!filter) return false;
    if (filter.chains.get('FORWARD') === 'DROP') return true;
    return filter.rules.some((line) => chainOf(line) === 'FORWARD' && /\s-j (DROP|REJECT)(\s|$)/.test(line));
  }

  forward(rule: Pick<PortForwardRule, 'protocol' | 'hostPort'>): InstalledForward | undefined {
    return this.#forwards.get(portForwardKey(rule));
  }

  forwards(): PortForwardRule[] {
    return [...this.#forwards.values()]
      .map((f) => f.rule)
      .sort((a, b) => a.protocol.localeCompare(b.protocol) || a.hostPort - b.hostPort);
  }

  /** Starts recording the lines of the next job. */
  beginJob(): void {
    this.#job = { nat: [], filter: [] };
  }

  /** The lines the current job recorded. */
  jobLines(): JobLines {
    return this.#job;
  }

  addForward(rule: PortForwardRule): void {
    const { prerouting, output, tag } = this.names;
    this.#ensureChain('nat', prerouting, 'PREROUTING');
    this.#ensureChain('nat', output, 'OUTPUT');
    const comment = forwardComment(rule, tag);
    const match = rule.hostIp === undefined ? '-m addrtype --dst-type LOCAL' : `-d ${rule.hostIp}/32`;
    const spec = (chain: string) =>
      `-A ${chain} ${match} -p ${rule.protocol} -m ${rule.protocol} --dport ${rule.hostPort} -m comment --comment "${comment}" -j DNAT --to-destination ${rule.guestIp}:${rule.guestPort}`;
    const lines = [prerouting, output].map((chain) => ({ table: 'nat' as const, line: spec(chain) }));
    for (const { line } of lines) this.#job.nat.push(line);
    this.#forwards.set(portForwardKey(rule), { rule, lines });
  }

  removeForward(installed: InstalledForward): void {
    for (const { table, line } of installed.lines) this.#job[table].push(line.replace(/^-A /, '-D '));
    this.#forwards.delete(portForwardKey(installed.rule));
  }

  /**
   * Brings one bridge's rules to what it needs: egress masquerade of its subnet, hairpin and 127.0.0.0/8
   * masquerade (nat, unless `filterOnly`), and accepts in FORWARD both ways (filter). Our rules for the bridge that
   * are not wanted any more (a previous subnet) are deleted.
   */
  prepareBridge(bridge: string, subnet: Ipv4Cidr, { filterOnly = false } = {}): void {
    const { postrouting, forward, tag } = this.names;
    const cidr = `${subnet.network}/${subnet.prefixLength}`;
    const prefix = `${tag}:br:${bridge}:`;
    const wanted: { table: IptablesTable; chain: string; comment: string; spec: string }[] = [
      { table: 'filter', chain: forward, comment: `${prefix}in`, spec: `-i ${bridge}` },
      {
        table: 'filter',
        chain: forward,
        comment: `${prefix}reply`,
        spec: `-o ${bridge} -m conntrack --ctstate RELATED,ESTABLISHED`,
      },
      {
        table: 'filter',
        chain: forward,
        comment: `${prefix}dnat`,
        spec: `-o ${bridge} -m conntrack --ctstate DNAT`,
      },
    ];
    if (!filterOnly) {
      wanted.push(
        {
          table: 'nat',
          chain: postrouting,
          comment: `${prefix}egress:${cidr}`,
          spec: `-s ${cidr} ! -o ${bridge}`,
        },
        {
          table: 'nat',
          chain: postrouting,
          comment: `${prefix}hairpin:${cidr}`,
          spec: `-s ${cidr} -o ${bridge} -m conntrack --ctstate DNAT`,
        },
        {
          table: 'nat',
          chain: postrouting,
          comment: `${prefix}localnet`,
          spec: `-s 127.0.0.0/8 -o ${bridge}`,
        },
      );
    }
    const tablesInPlay = new Set(wanted.map((w) => w.table));
    for (const [id, { table, line }] of [...this.#tagged]) {
      const comment = id.slice(table.length + 1);
      if (!tablesInPlay.has(table) || !comment.startsWith(prefix)) continue;
      if (wanted.some((w) => w.table === table && w.comment === comment)) continue;
      this.#job[table].push(line.replace(/^-A /, '-D '));
      this.#tagged.delete(id);
    }
    for (const w of wanted) {
      if (w.table === 'filter') this.#ensureChain('filter', forward, 'FORWARD');
      else this.#ensureChain('nat', postrouting, 'POSTROUTING');
      const id = `${w.table} ${w.comment}`;
      if (this.#tagged.has(id)) continue;
      const verdict = w.table === 'nat' ? 'MASQUERADE' : 'ACCEPT';
      const line = `-A ${w.chain} ${w.spec} -m comment --comment "${w.comment}" -j ${verdict}`;
      this.#job[w.table].push(line);
      this.#tagged.set(id, { table: w.table, line });
    }
  }

  #ensureChain(table: IptablesTable, chain: string, builtin: string): void {
    if (!this.#chains[table].has(chain)) {
      this.structure[table].declare.push(`:${chain} - [0:0]`);
      this.#chains[table].add(chain);
    }
    const save = this.#saved.get(table);
    const jumped =
      save?.rules.some(
        (line) => chainOf(line) === builtin && new RegExp(`\\s-j ${chain}(\\s|$)`).test(line),
      ) || this.structure[table].jump.some((line) => line.endsWith(`-j ${chain}`));
    if (!jumped) {
      this.structure[table].jump.push(
        `-I ${builtin} -m comment --comment "${this.names.tag}:jump" -j ${chain}`,
      );
    }
  }
}

/** CONFLICT for a forward that is held by another rule. */
export function forwardConflict(
  key: string,
  installed: PortForwardRule,
  action: 'add' | 'remove',
): NetOpsError {
  const where = `${installed.guestIp}:${installed.guestPort}${installed.hostIp ? ` on ${installed.hostIp}` : ''}`;
  return new NetOpsError(
    'CONFLICT',
    action === 'add'
      ? `${key} already forwards to ${where}`
      : `${key} forwards to ${where}, not to this rule's target`,
  );
}
