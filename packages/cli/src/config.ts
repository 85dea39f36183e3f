import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { NetOpsError, parseVmSubnet, validateInterfaceName } from '@my-hypervisor/net-ops';
import { CliError, invalidValue, usageError } from './errors.js';
import { flagName, type SettingKey, settings } from './settings.js';

/** Where a resolved setting came from: a flag, the environment, the config file, the default, or nowhere. */
export type SettingSource = 'flag' | 'env' | 'config' | 'default' | 'unset';

/** The resolved host settings of one invocation: flag > environment > config file > default. */
export interface CliConfig {
  readonly stateDir: string;
  readonly runDir: string;
  readonly netBackend: 'local' | 'mosnet';
  readonly nat: 'nft' | 'iptables';
  readonly mosnetSocket: string;
  readonly netns?: string;
  readonly bridge: string;
  readonly subnet: string;
  /** An absolute path or `simulator`; unset: look on PATH, else the simulator. */
  readonly vmmBinary?: string;
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
  const netBackend = oneOf(get('netBackend'), ['local', 'mosnet'] as const);
  const nat = oneOf(get('nat'), ['nft', 'iptables'] as const);
  if (netBackend === 'mosnet' && sources.nat === 'flag' && sources.netBackend === 'flag') {
    throw usageError(
      '--nat applies to the local network backend only',
      'drop --nat, or use --net-backend local',
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
    sources,
    ...(fromFile ? { configFile: file!.path } : {}),
  };
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

/** A flat YAML (or JSON) mapping of setting keys to strings. Unknown keys are errors, so typos never pass. */
async function readConfigFile(path: string, explicit: boolean): Promise<Partial<Record<SettingKey, string>>> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
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
  const data = await parseYamlDocument(text, `config ${path}`);
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw invalidValue(`config ${path}`, 'must be a mapping of settings', configHint());
  }
  const known = new Set<string>(settings.map((s) => s.key));
  const out: Partial<Record<SettingKey, string>> = {};
  for (const [key, value] of Object.entries(data as Record<string, unknown>)) {
    if (!known.has(key)) throw invalidValue(`${path}: ${key}`, 'unknown setting', configHint());
    if (typeof value !== 'string') throw invalidValue(`${path}: ${key}`, 'must be a string', configHint());
    out[key as SettingKey] = value;
  }
  return out;
}

function configHint(): string {
  return `valid keys: ${settings.map((s) => s.key).join(', ')} (see docs/cli.md)`;
}

/** Parses YAML 1.2 (JSON included) strictly: duplicate keys are errors. */
export async function parseYamlDocument(text: string, what: string): Promise<unknown> {
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
  return doc.toJS();
}

function absolutePath(raw: Raw): string {
  const { value, field } = raw;
  if (!isAbsolute(value)) throw invalidValue(field, `${JSON.stringify(value)} is not an absolute path`);
  if (/[\0\n]/.test(value)) throw invalidValue(field, 'must not contain NUL or newline');
  if (Buffer.byteLength(value) > 4096) throw invalidValue(field, 'is longer than 4096 bytes');
  return value;
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
