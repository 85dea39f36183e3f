import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { NetOpsError, parseVmSubnet, validateInterfaceName } from '@my-hypervisor/net-ops';
import { MAX_INPUT_FILE_BYTES, readFileUpTo } from './bounded-read.js';
import { CliError, invalidValue, usageError } from './errors.js';
import { configFileSettings, flagName, type SettingKey, settings } from './settings.js';

/** The network backends `--net-backend` chooses from. */
export const netBackends = ['local', 'mosnet', 'namespace'] as const;
export type NetBackend = (typeof netBackends)[number];

/** True for the backends whose host side is `LocalOps` (ip, nft/iptables): they share one NAT driver. */
export function usesLocalOps(backend: string): boolean {
  return backend === 'local' || backend === 'namespace';
}

/** Where a resolved setting came from: a flag, the environment, the config file, the default, or nowhere. */
export type SettingSource = 'flag' | 'env' | 'config' | 'default' | 'unset';

/** The resolved host settings of one invocation: flag > environment > config file > default. */
export interface CliConfig {
  readonly stateDir: string;
  readonly runDir: string;
  /** `namespace`: LocalOps on the host side, each VM in its own network namespace (`NamespaceNetwork`). */
  readonly netBackend: 'local' | 'mosnet' | 'namespace';
  readonly nat: 'nft' | 'iptables';
  readonly mosnetSocket: string;
  readonly netns?: string;
  readonly bridge: string;
  readonly subnet: string;
  /** An absolute path or `simulator`; unset: look on PATH (see `chooseVmm`). */
  readonly vmmBinary?: string;
  /**
   * Config file only (`allowedVmmBinaries`): absolute paths a spec's `vmm.binary` may name, besides the chosen
   * VMM. Empty when unset.
   */
  readonly allowedVmmBinaries: readonly string[];
  /** Least privilege for VMMs (`VmManagerOptions.confinement.mode`). */
  readonly confinement: 'auto' | 'on' | 'off';
  /** Confined VMMs may use userfaultfd (`VmManagerOptions.confinement.userfaultfd`): on-demand restores. */
  readonly confinementUserfaultfd: 'on' | 'off';
  /** Keep a standby VMM for each running VM with a snapshot (`VmmOptions.standby`): faster restores. */
  readonly vmmStandby: 'on' | 'off';
  /** myhvd's socket; default `<runDir>/myhvd.sock`. */
  readonly daemonSocket: string;
  /** The cluster's etcd endpoints (`http(s)://host:port`), when this invocation works on a cluster. */
  readonly cluster?: readonly string[];
  /** Where each setting came from. */
  readonly sources: Readonly<Record<SettingKey, SettingSource>>;
  /** The config file that was read, if any. */
  readonly configFile?: string;
}

/** The config file read when neither `--config` nor `MYHV_CONFIG` names one. */
export const DEFAULT_CONFIG_FILE = '/etc/myhv/config.yaml';
export const CONFIG_ENV = 'MYHV_CONFIG';

/** Socket paths are limited to 108 bytes; the longest we put under the run dir is ~64 bytes. */
const MAX_RUN_DIR_BYTES = 40;

/** What `resolveConfig` reads: flag values (and `--config`) and the environment. */
export interface ResolveConfigInput {
  /** Flag values by setting key, plus `config` (`--config <file>`). */
  readonly flags: Partial<Record<SettingKey | 'config', string | undefined>>;
  readonly env: Readonly<Record<string, string | undefined>>;
}

type Raw = { value: string; source: SettingSource; field: string };

/** Resolves and validates every setting. Throws INVALID_ARGUMENT naming the flag, variable or config key. */
export async function resolveConfig({ flags, env }: ResolveConfigInput): Promise<CliConfig> {
  const file = configFilePath(flags.config, env);
  const fromFile = file ? await readConfigFile(file.path, file.explicit) : undefined;
  const raw = {} as Record<SettingKey, Raw | undefined>;
  const sources = {} as Record<SettingKey, SettingSource>;
  for (const def of settings) {
    const flag = flags[def.key];
    const envValue = nonEmpty(env[def.env]);
    const fileValue = fromFile?.[def.key];
    let entry: Raw | undefined;
    if (flag !== undefined) entry = { value: flag, source: 'flag', field: flagName(def) };
    else if (envValue !== undefined) entry = { value: envValue, source: 'env', field: def.env };
    else if (fileValue !== undefined)
      entry = { value: fileValue, source: 'config', field: `${file!.path}: ${def.key}` };
    else if (def.defaultValue !== undefined)
      entry = { value: def.defaultValue, source: 'default', field: flagName(def) };
    raw[def.key] = entry;
    sources[def.key] = entry?.source ?? 'unset';
  }
  const get = (key: SettingKey): Raw => raw[key]!;
  const netBackend = oneOf(get('netBackend'), netBackends);
  const nat = oneOf(get('nat'), ['nft', 'iptables'] as const);
  if (netBackend === 'mosnet' && sources.nat === 'flag' && sources.netBackend === 'flag') {
    throw usageError(
      '--nat applies to the local and namespace network backends only',
      'drop --nat, or use --net-backend local (or namespace)',
    );
  }
  const runDir = absolutePath(get('runDir'));
  if (Buffer.byteLength(runDir) > MAX_RUN_DIR_BYTES) {
    throw invalidValue(
      get('runDir').field,
      `${runDir} is longer than ${MAX_RUN_DIR_BYTES} bytes`,
      'use a short directory such as /run/myhv: socket paths under it are limited to 108 bytes',
    );
  }
  const netns = raw.netns ? netnsName(raw.netns) : undefined;
  const vmm = raw.vmmBinary;
  return {
    stateDir: absolutePath(get('stateDir')),
    runDir,
    netBackend,
    nat,
    mosnetSocket: absolutePath(get('mosnetSocket')),
    ...(netns ? { netns } : {}),
    bridge: bridgeName(get('bridge')),
    subnet: subnet(get('subnet')),
    ...(vmm ? { vmmBinary: vmm.value === 'simulator' ? 'simulator' : absolutePath(vmm) } : {}),
    allowedVmmBinaries: fromFile?.allowedVmmBinaries ?? [],
    confinement: oneOf(get('confinement'), ['auto', 'on', 'off'] as const),
    confinementUserfaultfd: oneOf(get('confinementUserfaultfd'), ['on', 'off'] as const),
    vmmStandby: oneOf(get('vmmStandby'), ['on', 'off'] as const),
    daemonSocket: raw.daemonSocket ? socketPath(raw.daemonSocket) : join(runDir, 'myhvd.sock'),
    ...(raw.cluster ? { cluster: clusterEndpoints(raw.cluster) } : {}),
    sources,
    ...(fromFile ? { configFile: file!.path } : {}),
  };
}

/** `etcd=URL[,URL…]` (or just the URLs): each an `http(s)://host:port` etcd endpoint. */
function clusterEndpoints(raw: Raw): string[] {
  const hint = 'e.g. --cluster etcd=http://10.0.0.1:2379,http://10.0.0.2:2379';
  const list = raw.value.replace(/^etcd=/, '');
  if (/^[a-z]+=/.test(list)) {
    throw invalidValue(raw.field, `${JSON.stringify(raw.value)}: only etcd clusters are supported`, hint);
  }
  const endpoints = list.split(',').map((url) => url.trim());
  if (endpoints.length > 16) throw invalidValue(raw.field, 'at most 16 etcd endpoints', hint);
  for (const url of endpoints) {
    if (!/^https?:\/\/(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]{1,253}):\d{1,5}\/?$/.test(url)) {
      throw invalidValue(raw.field, `${JSON.stringify(url)} is not an etcd URL http(s)://host:port`, hint);
    }
  }
  return endpoints;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function configFilePath(
  flag: string | undefined,
  env: ResolveConfigInput['env'],
): { path: string; explicit: boolean } | undefined {
  if (flag !== undefined) return { path: flag, explicit: true };
  const fromEnv = nonEmpty(env[CONFIG_ENV]);
  if (fromEnv !== undefined) return { path: fromEnv, explicit: true };
  return existsSync(DEFAULT_CONFIG_FILE) ? { path: DEFAULT_CONFIG_FILE, explicit: false } : undefined;
}

/** What a config file sets: settings as strings, and the config-file-only ones. */
type ConfigFileValues = Partial<Record<SettingKey, string>> & { allowedVmmBinaries?: readonly string[] };

/**
 * A flat YAML (or JSON) mapping of setting keys to strings (`allowedVmmBinaries` may be a list). Unknown keys are
 * errors, so typos never pass.
 */
async function readConfigFile(path: string, explicit: boolean): Promise<ConfigFileValues> {
  let text: string | undefined;
  try {
    text = await readFileUpTo(path, MAX_INPUT_FILE_BYTES);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!explicit && code === 'ENOENT') return {};
    throw invalidValue(
      explicit ? '--config' : 'config',
      `cannot read ${path} (${code ?? String(error)})`,
      'pass an existing file to --config or MYHV_CONFIG',
      error,
    );
  }
  if (text === undefined) {
    throw invalidValue(
      `config ${path}`,
      'is larger than 1 MiB',
      `a config file is a few lines: ${configHint()}`,
    );
  }
  const data = await parseYamlDocument(text, `config ${path}`);
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw invalidValue(`config ${path}`, 'must be a mapping of settings', configHint());
  }
  const known = new Set<string>(settings.map((s) => s.key));
  const out: ConfigFileValues = {};
  for (const [key, value] of Object.entries(data as Record<string, unknown>)) {
    if (key === 'allowedVmmBinaries') {
      out.allowedVmmBinaries = allowedBinaries(value, `${path}: ${key}`);
      continue;
    }
    if (!known.has(key)) throw invalidValue(`${path}: ${key}`, 'unknown setting', configHint());
    if (typeof value !== 'string') throw invalidValue(`${path}: ${key}`, 'must be a string', configHint());
    out[key as SettingKey] = value;
  }
  return out;
}

function configHint(): string {
  const keys = [...settings, ...configFileSettings].map((s) => s.key);
  return `valid keys: ${keys.join(', ')} (see docs/cli.md)`;
}

/** `allowedVmmBinaries`: a list of absolute paths, or one comma-separated string of them. */
function allowedBinaries(value: unknown, field: string): string[] {
  const hint =
    'a list of absolute paths (allowedVmmBinaries: [/usr/local/bin/cloud-hypervisor]), or one string of them separated by commas';
  const items =
    typeof value === 'string'
      ? value.split(',').map((item) => item.trim())
      : Array.isArray(value) && value.every((item) => typeof item === 'string')
        ? (value as string[])
        : undefined;
  if (!items) throw invalidValue(field, 'must be a list of paths or a string', hint);
  return items
    .filter((item) => item !== '')
    .map((item) => absolutePath({ value: item, source: 'config', field }));
}

/** Alias uses a document may expand to (yaml's own default, stated): a "billion laughs" file stops at this. */
const MAX_YAML_ALIAS_COUNT = 100;

/** Deeper than any spec or config needs; far below what exhausts the YAML parser's stack. */
const MAX_YAML_NESTING = 64;

/**
 * Deep nesting is refused before the YAML parser sees it: `[[[[…` or `- - - - …` a few thousand levels deep makes
 * it recurse for tens of seconds or run out of memory. Counts flow brackets outside quotes and comments, and per
 * line the indentation and the `- `/`? ` indicators that open a block level each.
 */
function nestingProblem(text: string): string | undefined {
  let depth = 0;
  let quote: string | undefined;
  let comment = false;
  let lineStart = true;
  let blockLevels = 0;
  let indent = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\n') {
      // Quoted scalars rarely span lines; ending them here keeps a stray quote from hiding the rest of the file.
      quote = undefined;
      comment = false;
      lineStart = true;
      blockLevels = 0;
      indent = 0;
      continue;
    }
    if (comment) continue;
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (lineStart) {
      if (c === ' ') {
        if (++indent > MAX_YAML_NESTING * 4)
          return `nests deeper than ${MAX_YAML_NESTING} levels (indentation)`;
        continue;
      }
      if ((c === '-' || c === '?') && (text[i + 1] === ' ' || text[i + 1] === '\n')) {
        if (++blockLevels > MAX_YAML_NESTING) return `nests deeper than ${MAX_YAML_NESTING} levels`;
        continue;
      }
      lineStart = false;
    }
    if (c === '#' && (i === 0 || /\s/.test(text[i - 1]!))) comment = true;
    else if ((c === '"' || c === "'") && (i === 0 || /[\s:,[{]/.test(text[i - 1]!))) quote = c;
    else if (c === '[' || c === '{') {
      if (++depth > MAX_YAML_NESTING) return `nests deeper than ${MAX_YAML_NESTING} levels`;
    } else if ((c === ']' || c === '}') && depth > 0) depth--;
  }
  return undefined;
}

/**
 * Parses YAML 1.2 (JSON included) strictly: duplicate keys are errors, and so are aliases that expand past
 * `MAX_YAML_ALIAS_COUNT` (an alias bomb): INVALID_ARGUMENT naming `what`.
 */
export async function parseYamlDocument(text: string, what: string): Promise<unknown> {
  const tooDeep = nestingProblem(text);
  if (tooDeep) throw invalidValue(what, tooDeep, 'a VM spec or config nests a few levels, not hundreds');
  // Loaded on demand: only commands that read a file pay for the YAML parser.
  const { parseDocument } = await import('yaml');
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  const first = doc.errors[0];
  if (first) {
    const line = first.linePos?.[0];
    throw invalidValue(
      what,
      `not valid YAML or JSON${line ? ` (line ${line.line}, column ${line.col})` : ''}: ${first.message
        .split('\n')[0]!
        .replace(/\s*at line \d+, column \d+:?$/, '')}`,
      undefined,
      first,
    );
  }
  try {
    return doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT });
  } catch (error) {
    // yaml throws a ReferenceError for an alias bomb and for an alias whose anchor comes later.
    const bomb = /excessive alias count/i.test((error as Error).message);
    throw invalidValue(
      what,
      bomb
        ? 'its *aliases would expand too far (a YAML alias bomb?)'
        : `not valid YAML or JSON: ${(error as Error).message.split('\n')[0]}`,
      bomb ? 'write repeated values out, or use fewer *aliases' : undefined,
      error,
    );
  }
}

function absolutePath(raw: Raw): string {
  const { value, field } = raw;
  if (!isAbsolute(value)) throw invalidValue(field, `${JSON.stringify(value)} is not an absolute path`);
  if (/[\0\n]/.test(value)) throw invalidValue(field, 'must not contain NUL or newline');
  if (Buffer.byteLength(value) > 4096) throw invalidValue(field, 'is longer than 4096 bytes');
  return value;
}

function socketPath(raw: Raw): string {
  const path = absolutePath(raw);
  if (Buffer.byteLength(path) > 107) {
    throw invalidValue(raw.field, `${path} is longer than the 107 bytes a Unix socket path may have`);
  }
  return path;
}

function oneOf<const T extends readonly string[]>(raw: Raw, values: T): T[number] {
  if ((values as readonly string[]).includes(raw.value)) return raw.value as T[number];
  throw invalidValue(
    raw.field,
    `${JSON.stringify(raw.value)} is not one of ${values.join(', ')}`,
    `use one of: ${values.join(', ')}`,
  );
}

function netnsName(raw: Raw): string {
  if (/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(raw.value)) return raw.value;
  throw invalidValue(
    raw.field,
    `${JSON.stringify(raw.value)} is not a namespace name`,
    "use 1–64 letters, digits, '_', '.', '-' (see `ip netns list`)",
  );
}

function bridgeName(raw: Raw): string {
  try {
    return validateInterfaceName(raw.value, raw.field);
  } catch (error) {
    throw rewrap(error, raw.field, 'use 1–15 bytes of letters, digits, _ . - (an interface name)');
  }
}

function subnet(raw: Raw): string {
  try {
    const cidr = parseVmSubnet(raw.value, raw.field);
    return `${cidr.network}/${cidr.prefixLength}`;
  } catch (error) {
    throw rewrap(error, raw.field, 'use an IPv4 network such as 10.62.0.0/24 (prefix /8 to /30)');
  }
}

function rewrap(error: unknown, field: string, hint: string): unknown {
  if (!NetOpsError.isInstance(error) || error.code !== 'INVALID_ARGUMENT') return error;
  const message = error.message.startsWith(`${field}: `)
    ? error.message.slice(field.length + 2)
    : error.message;
  return new CliError('INVALID_ARGUMENT', `${field}: ${message}`, { cause: error, details: { field, hint } });
}
