import { type Style, visibleWidth } from './style.js';

export interface TableOptions {
  /** On a terminal: aligned columns under an upper-case header. Otherwise: tab-separated rows, no header. */
  readonly tty: boolean;
  readonly style: Style;
}

/**
 * Renders rows for people (aligned, like `docker ps`) or for pipes (tab-separated, like `gh` when not on a TTY,
 * so `cut -f` works). Returns the lines without trailing newlines.
 */
export function renderTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  { tty, style }: TableOptions,
): string[] {
  if (!tty) return rows.map((row) => row.map((cell) => cell.replace(/[\t\n]/g, ' ')).join('\t'));
  const widths = headers.map((h, i) =>
    Math.max(visibleWidth(h), ...rows.map((r) => visibleWidth(r[i] ?? ''))),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell + ' '.repeat(widths[i]! - visibleWidth(cell))))
      .join('   ')
      .trimEnd();
  return [style.bold(line(headers.map((h) => h.toUpperCase()))), ...rows.map(line)];
}

/** `key: value` lines with the values aligned (for `vm inspect`). */
export function renderFields(fields: readonly (readonly [string, string])[], style: Style): string[] {
  const width = Math.max(0, ...fields.map(([k]) => k.length + 1));
  return fields.map(([k, v]) => `${style.dim(`${k}:`.padEnd(width))} ${v}`);
}
