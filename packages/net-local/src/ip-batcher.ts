import type { NetOpsError } from '@my-hypervisor/net-ops';
import { classifyErrorText, commandError } from './command-error.js';
import type { CommandOutcome, HostCommands } from './host-commands.js';
import { type PendingJob, submitJob } from './pending-job.js';
import { WaveQueue } from './wave-queue.js';

/** One line of an `ip -batch` script; `read` lines (`link show …`) print one JSON document each. */
export interface IpLine {
  readonly text: string;
  readonly read?: boolean;
}

/** What became of one line: its parsed JSON output for reads, or the error `ip` printed for it. */
export type IpLineResult =
  | { readonly ok: true; readonly output?: unknown }
  | { readonly ok: false; readonly error: NetOpsError };

interface IpJob extends PendingJob<IpLineResult[]> {
  readonly lines: readonly IpLine[];
}

/** The argv tail of every batch: JSON for reads, details for link kinds, and `-force` to run past failed lines. */
export const IP_BATCH_ARGS = ['-json', '-details', '-force', '-batch', '-'] as const;

/**
 * Coalesces the `ip` commands of every operation issued in the same tick into one `ip -force -batch -` process.
 * `-force` keeps going after a failed line and reports it as `Command failed -:N` after its error text, which is
 * how each error is handed back to the operation whose line N it was. A job's lines stay contiguous, so a
 * multi-line operation is attributed as a unit. Identical reads in one wave share one line. When ip exits
 * mid-batch anyway, no line that ran is run again (see `#runWave`).
 */
export class IpBatcher {
  readonly #host: HostCommands;
  readonly #queue: WaveQueue<IpJob>;

  constructor(host: HostCommands) {
    this.#host = host;
    this.#queue = new WaveQueue((jobs) => this.#runWave(jobs));
  }

  /** Runs `lines` in the next batch; resolves with one result per line (a failed line is a result, not a throw). */
  run(lines: readonly IpLine[], signal?: AbortSignal): Promise<IpLineResult[]> {
    return submitJob<IpLineResult[], IpJob>(this.#queue, (settle) => ({ ...settle, lines }), signal);
  }

  async #runWave(jobs: IpJob[]): Promise<void> {
    const script: string[] = [];
    const reads = new Set<number>();
    // A read may stand in for an identical one only while no write line came between them.
    const readsSinceLastWrite = new Map<string, number>();
    const positions = jobs.map((job) =>
      job.lines.map((line) => {
        if (!line.read) readsSinceLastWrite.clear();
        const shared = line.read ? readsSinceLastWrite.get(line.text) : undefined;
        if (shared !== undefined) return shared;
        script.push(line.text);
        if (line.read) {
          reads.add(script.length);
          readsSinceLastWrite.set(line.text, script.length);
        }
        return script.length;
      }),
    );

    let outcome: CommandOutcome;
    try {
      outcome = await this.#host.run('ip', IP_BATCH_ARGS, { input: `${script.join('\n')}\n` });
    } catch (error) {
      for (const job of jobs) job.reject(error);
      return;
    }

    const { failures, outputs, ran, stop } = parseBatchOutcome(outcome, script, reads);
    const resultOf = (n: number): IpLineResult | undefined => {
      if (n > ran) return undefined;
      const text = failures.get(n);
      if (text !== undefined) return { ok: false, error: commandError(this.#host.failure(outcome, text, n)) };
      if (!reads.has(n)) return { ok: true };
      // A read whose output we could not place is run again: reads change nothing.
      return outputs.has(n) ? { ok: true, output: outputs.get(n) } : undefined;
    };

    if (!stop) {
      for (const [j, job] of jobs.entries()) job.resolve(positions[j]!.map((n) => resultOf(n)!));
      return;
    }

    // `ip` stopped early (an argument it resolves while parsing, such as `master X`, exits the whole batch) or
    // failed as a whole. Lines that ran keep their results and never run again. The job whose line stopped ip
    // fails as it would have alone; a whole-process cause fails every job left; the others run again.
    const stopText = stop.text || undefined;
    const wholeCode = classifyErrorText(stopText ?? outcome.stderr);
    const whole =
      jobs.length === 1 || wholeCode === 'BACKEND_UNAVAILABLE' || wholeCode === 'PERMISSION_DENIED';
    const rest: IpJob[] = [];
    for (const [j, job] of jobs.entries()) {
      const known = positions[j]!.map(resultOf);
      if (isComplete(known)) job.resolve(known);
      else if (stop.line !== undefined && positions[j]!.includes(stop.line))
        job.reject(commandError(this.#host.failure(outcome, stopText, stop.line)));
      else if (whole) job.reject(commandError(this.#host.failure(outcome, stopText)));
      else rest.push(remainderOf(job, known));
    }
    if (rest.length === 0) return;
    // Past a known stopping line nothing ran yet, so the rest is one new batch. Otherwise any of the rest may
    // hold the culprit, so each runs on its own.
    if (stop.line !== undefined) await this.#runWave(rest);
    else for (const job of rest) await this.#runWave([job]);
  }
}

function isComplete(results: (IpLineResult | undefined)[]): results is IpLineResult[] {
  return results.every((r) => r !== undefined);
}

/** `job` narrowed to its lines without a result yet; settling it settles `job` with the known results merged in. */
function remainderOf(job: IpJob, known: readonly (IpLineResult | undefined)[]): IpJob {
  const lines = job.lines.filter((_, i) => known[i] === undefined);
  if (lines.length === job.lines.length) return job;
  return {
    lines,
    resolve: (results) => {
      let next = 0;
      job.resolve(known.map((r) => r ?? results[next++]!));
    },
    reject: (error) => job.reject(error),
  };
}

interface ParsedBatch {
  /** Line number → the error text printed before its `Command failed -:N`. */
  readonly failures: Map<number, string>;
  /** Line number → parsed JSON output of a read line that succeeded. */
  readonly outputs: Map<number, unknown>;
  /**
   * Lines 1 to `ran` are known to have run: all when the batch finished, else those up to the last attributed
   * failure or printed read (with `-force`, ip gets past a line only by running it).
   */
  readonly ran: number;
  /**
   * Present when the batch did not run to its end: the error text after the last attributed failure (maybe
   * empty), and the line that stopped ip when that can be told.
   */
  readonly stop?: { readonly text: string; readonly line?: number };
}

/**
 * Splits a batch into per-line errors and read outputs, and, when it did not run to its end (exit code other than
 * 0/1, error text after the last attributed failure, or missing read output), tells how far it got.
 */
export function parseBatchOutcome(
  outcome: Pick<CommandOutcome, 'exitCode' | 'stdout' | 'stderr'>,
  script: readonly string[],
  reads: ReadonlySet<number>,
): ParsedBatch {
  const failures = new Map<number, string>();
  let pending: string[] = [];
  for (const line of outcome.stderr.split('\n')) {
    const marker = /^Command failed -:(\d+)\s*$/.exec(line);
    if (marker) {
      failures.set(Number(marker[1]), pending.join('\n').trim());
      pending = [];
    } else if (line.trim() !== '') {
      pending.push(line);
    }
  }
  const unattributed = pending.join('\n').trim();
  const lastFailure = Math.max(0, ...failures.keys());

  const documents = outcome.stdout.split('\n').filter((line) => line.trim() !== '');
  const readLines = [...reads].filter((n) => !failures.has(n)).sort((a, b) => a - b);
  const outputs = new Map<number, unknown>();
  try {
    for (const [i, document] of documents.entries()) {
      if (i >= readLines.length) throw new Error('more output than reads');
      outputs.set(readLines[i]!, JSON.parse(document));
    }
  } catch {
    outputs.clear();
  }
  // Reads print in order, so every read before an attributed failure must have printed; if not, stdout is not
  // what we think it is and no output is trusted.
  if (readLines.some((n) => n < lastFailure && !outputs.has(n))) outputs.clear();

  const finished =
    outcome.exitCode === 0 || (outcome.exitCode === 1 && unattributed === '' && failures.size > 0);
  if (finished && documents.length === readLines.length && outputs.size === readLines.length)
    return { failures, outputs, ran: script.length };

  const ran = Math.max(lastFailure, ...outputs.keys());
  // ip names no line when it exits mid-batch, but `argument "X" is wrong` comes only from a parse error that exits,
  // and X is a word of the stopping line: when one line not yet known to have run holds X, that line stopped ip.
  // Either way the lines before the first that holds X ran.
  const quoted = /argument "([^"]*)" is wrong/.exec(unattributed)?.[1];
  const holding = script
    .map((_, i) => i + 1)
    .filter((n) => n > ran && quoted !== undefined && script[n - 1]!.split(/\s+/).includes(quoted));
  return {
    failures,
    outputs,
    ran: holding.length > 0 ? holding[0]! - 1 : ran,
    stop: { text: unattributed, ...(holding.length === 1 ? { line: holding[0]! } : {}) },
  };
}
