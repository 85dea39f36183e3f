import { invalidValue } from './errors.js';

/** How one repeatable `key=value` flag reads its values. */
export interface KeyValueArgOptions {
  /** The flag named in errors: `--label`. */
  readonly flag: string;
  /** One line on how to write it, shown with every error. */
  readonly hint: string;
  /**
   * What a key given twice does: refused (the default), or the last value wins, as `--on-host` and `--host-label`
   * always did.
   */
  readonly repeatedKey?: 'refuse' | 'last-wins';
  /** Keys the flag takes, when no schema checks them later; any other key is not `key=value`. */
  readonly key?: RegExp;
  /** Values the flag takes, likewise. */
  readonly value?: RegExp;
}

/**
 * Values of a repeatable `key=value` flag as a record, split at the first '=': the key must not be empty, the value
 * may be. Errors name `options.flag` (exit 2).
 */
export function parseKeyValueArgs(
  values: readonly string[],
  options: KeyValueArgOptions,
): Record<string, string> {
  const { flag, hint } = options;
  const pairs = new Map<string, string>();
  for (const text of values) {
    const at = text.indexOf('=');
    const key = text.slice(0, at);
    const value = text.slice(at + 1);
    if (at <= 0 || options.key?.test(key) === false || options.value?.test(value) === false) {
      throw invalidValue(flag, `${JSON.stringify(text)} is not key=value`, hint);
    }
    if (pairs.has(key) && options.repeatedKey !== 'last-wins') {
      throw invalidValue(flag, `${JSON.stringify(key)} is given twice`, hint);
    }
    pairs.set(key, value);
  }
  return Object.fromEntries(pairs);
}
