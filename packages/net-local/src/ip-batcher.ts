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
 * multi-line operation is attributed as a unit. Identical reads in one wave share one line.
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

    const parsed = parseBatchOutcome(outcome, reads);
    if (parsed) {
      for (const [j, job] of jobs.entries()) {
        job.resolve(
          positions[j]!.map((n): IpLineResult => {
            const text = parsed.failures.get(n);
            if (text !== undefined)
              return { ok: false, error: commandError(this.#host.failure(outcome, text, n)) };
            return parsed.outputs.has(n) ? { ok: true, output: parsed.outputs.get(n) } : { ok: true };
          }),
        );
      }
      return;
    }

    // `ip` stopped early (an argument it resolves while parsing, such as `master X`, exits the whole batch) or
    // failed as a whole. A whole-process cause fails everyone; otherwise each job runs again on its own.
    const wholeCode = classifyErrorText(outcome.stderr);
    if (jobs.length === 1 || wholeCode === 'BACKEND_UNAVAILABLE' || wholeCode === 'PERMISSION_DENIED') {
      for (const job of jobs) job.reject(commandError(this.#host.failure(outcome)));
      return;
    }
    for (const job of jobs) await this.#runWave([job]);
  }
}

interface ParsedBatch {
  /** Line number → the error text printed before its `Command failed -:N`. */
  readonly failures: Map<number, string>;
  /** Line number → parsed JSON output of a read line that succeeded. */
  readonly outputs: Map<number, unknown>;
}

/**
 * Splits a finished batch into per-line errors and read outputs, or returns undefined when the batch did not run
 * to its end (exit code other than 0/1, error text after the last attributed failure, or missing read output).
 */
export function parseBatchOutcome(
  outcome: Pick<CommandOutcome, 'exitCode' | 'stdout' | 'stderr'>,
  reads: ReadonlySet<number>,
): ParsedBatch | undefined {
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
  if (outcome.exitCode !== 0 && (outcome.exitCode !== 1 || unattributed !== '' || failures.size === 0))
    return undefined;

  const documents = outcome.stdout.split('\n').filter((line) => line.trim() !== '');
  const readLines = [...reads].filter((n) => !failures.has(n)).sort((a, b) => a - b);
  if (documents.length !== readLines.length) return undefined;
  const outputs = new Map<number, unknown>();
  try {
    for (const [i, n] of readLines.entries()) outputs.set(n, JSON.parse(documents[i]!));
  } catch {
    return undefined;
  }
  return { failures, outputs };
}
