import type { StepEvent } from '@my-hypervisor/vm-manager';
import type { ErrorReport } from './describe-error.js';
import { formatDuration } from './format.js';
import { createStyle, type Style } from './style.js';
import { renderFields, renderTable } from './table.js';

export interface OutputOptions {
  readonly json: boolean;
  /** stdout is a terminal: aligned tables, in-place progress. */
  readonly tty: boolean;
  /** ANSI colour: a terminal and no NO_COLOR. */
  readonly color: boolean;
}

/**
 * Everything a command prints goes through here: results to stdout (JSON in `--json` mode, text otherwise),
 * progress and errors to stderr. In JSON mode stdout carries exactly one JSON document.
 */
export class Output {
  readonly json: boolean;
  readonly tty: boolean;
  readonly style: Style;
  readonly #stdout: NodeJS.WritableStream;
  readonly #stderr: NodeJS.WritableStream;
  #openProgressLine = false;

  constructor(stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream, options: OutputOptions) {
    this.#stdout = stdout;
    this.#stderr = stderr;
    this.json = options.json;
    this.tty = options.tty;
    this.style = createStyle(options.color);
  }

  /** A line of human output on stdout; nothing in JSON mode. */
  print(line = ''): void {
    if (this.json) return;
    this.#closeProgressLine();
    this.#stdout.write(`${line}\n`);
  }

  printLines(lines: readonly string[]): void {
    for (const line of lines) this.print(line);
  }

  /** A note for people on stderr (warnings, "cleaning up…"); nothing in JSON mode. */
  note(line: string): void {
    if (this.json) return;
    this.#closeProgressLine();
    this.#stderr.write(`${line}\n`);
  }

  /** The one JSON document of a command (only in JSON mode): indented on a terminal, one line otherwise. */
  emitJson(value: unknown): void {
    if (!this.json) return;
    // Indented for people on a terminal; one compact line for pipes (same document, less to write and parse).
    this.#stdout.write(`${JSON.stringify(value, null, this.tty ? 2 : undefined)}\n`);
  }

  /** Prints `json` in JSON mode, else runs `human`. */
  result(json: unknown, human: () => void): void {
    if (this.json) this.emitJson(json);
    else human();
  }

  /** A table: aligned on a terminal (or with `aligned`, for output meant only for people), else tab-separated. */
  table(headers: readonly string[], rows: readonly (readonly string[])[], { aligned = this.tty } = {}): void {
    this.printLines(renderTable(headers, rows, { tty: aligned, style: this.style }));
  }

  fields(fields: readonly (readonly [string, string])[]): void {
    this.printLines(renderFields(fields, this.style));
  }

  ok(text: string): string {
    return `${this.style.green('✓')} ${text}`;
  }

  bad(text: string): string {
    return `${this.style.red('✗')} ${text}`;
  }

  /**
   * A progress sink for manager steps, on stderr. On a terminal: one line per step, rewritten in place from
   * "…" to ✓/✗ with its time. Otherwise: one plain line per finished, failed or undone step.
   */
  progress(): (event: StepEvent) => void {
    return (event) => {
      if (this.json) return;
      const s = this.style;
      const ms = event.ms === undefined ? '' : formatDuration(event.ms);
      if (!this.tty) {
        const verb = { start: '', done: 'done', failed: 'failed', undo: '', undone: 'undone' }[event.phase];
        if (!verb) return;
        const tail = event.phase === 'failed' && event.error ? `: ${event.error}` : '';
        this.#stderr.write(`${event.op} ${event.vm}: ${event.step} ${verb} (${ms})${tail}\n`);
        return;
      }
      const label = `${event.vm} ${event.step}`.padEnd(28);
      if (event.phase === 'start' || event.phase === 'undo') {
        this.#closeProgressLine();
        const what = event.phase === 'undo' ? `undo ${label}` : label;
        this.#stderr.write(`  ${s.dim('…')} ${what}`);
        this.#openProgressLine = true;
        return;
      }
      const mark =
        event.phase === 'failed' ? s.red('✗') : event.phase === 'undone' ? s.yellow('↶') : s.green('✓');
      const tail = event.phase === 'failed' && event.error ? `  ${s.red(event.error)}` : '';
      this.#stderr.write(
        `${this.#openProgressLine ? '\r\x1b[2K' : ''}  ${mark} ${label} ${s.dim(ms.padStart(9))}${tail}\n`,
      );
      this.#openProgressLine = false;
    };
  }

  /** The error report: `myhv: error: …` plus a hint, or `{"error": …}` in JSON mode; always on stderr. */
  error(report: ErrorReport, debug: readonly string[] = []): void {
    this.#closeProgressLine();
    if (this.json) {
      this.#stderr.write(`${JSON.stringify({ error: report })}\n`);
    } else {
      this.#stderr.write(`${this.style.red('myhv: error:')} ${report.message}\n`);
      if (report.hint) this.#stderr.write(`  hint: ${report.hint}\n`);
    }
    for (const line of debug) this.#stderr.write(`  ${line}\n`);
  }

  #closeProgressLine(): void {
    if (!this.#openProgressLine) return;
    this.#stderr.write('\n');
    this.#openProgressLine = false;
  }
}
