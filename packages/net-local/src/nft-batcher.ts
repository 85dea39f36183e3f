import { commandError } from './command-error.js';
import type { CommandOutcome, HostCommands } from './host-commands.js';
import { type PendingJob, submitJob } from './pending-job.js';
import { WaveQueue } from './wave-queue.js';

/** When a job needs the table structure in front of its lines. */
export type StructureNeed = 'always' | 'if-not-applied';

interface NftJob extends PendingJob<void> {
  readonly lines: readonly string[];
  readonly structure: StructureNeed;
}

/** An error nft located in its input: `/dev/stdin:LINE:COLS: Error: TEXT`. */
export interface NftLocatedError {
  readonly line: number;
  readonly text: string;
}

export function parseNftErrors(stderr: string): NftLocatedError[] {
  const errors: NftLocatedError[] = [];
  for (const match of stderr.matchAll(/^(?:\/dev\/stdin|-):(\d+):[\d-]+: Error: (.*)$/gm)) {
    errors.push({ line: Number(match[1]), text: match[2]!.trim() });
  }
  return errors;
}

/**
 * Coalesces the nft commands of every operation issued in the same tick into one `nft -f -` transaction. nft applies
 * all or nothing, so on failure the jobs whose lines nft named are failed with their own error and the others run
 * again in a new transaction: one failing forward never fails its neighbours. The table structure (idempotent:
 * `add` plus `flush chain`) is put in front of the first transaction and whenever a job asks for it.
 */
export class NftBatcher {
  readonly #host: HostCommands;
  readonly #structure: () => readonly string[];
  readonly #queue: WaveQueue<NftJob>;
  #structureApplied = false;

  constructor(host: HostCommands, structure: () => readonly string[]) {
    this.#host = host;
    this.#structure = structure;
    this.#queue = new WaveQueue((jobs) => this.#runWave(jobs));
  }

  run(lines: readonly string[], structure: StructureNeed, signal?: AbortSignal): Promise<void> {
    return submitJob<void, NftJob>(this.#queue, (settle) => ({ ...settle, lines, structure }), signal);
  }

  /** Forget that the structure was applied (after it was found missing), so the next transaction carries it. */
  invalidateStructure(): void {
    this.#structureApplied = false;
  }

  async #runWave(jobs: NftJob[]): Promise<void> {
    let remaining = jobs;
    while (remaining.length > 0) {
      const withStructure = remaining.some((job) => job.structure === 'always' || !this.#structureApplied);
      const script = withStructure ? [...this.#structure()] : [];
      const structureLines = script.length;
      const owners: NftJob[] = [];
      for (const job of remaining) {
        for (const line of job.lines) {
          script.push(line);
          owners[script.length] = job;
        }
      }

      let outcome: CommandOutcome;
      try {
        outcome = await this.#host.run('nft', ['-f', '-'], { input: `${script.join('\n')}\n` });
      } catch (error) {
        for (const job of remaining) job.reject(error);
        return;
      }
      if (outcome.exitCode === 0) {
        if (withStructure) this.#structureApplied = true;
        for (const job of remaining) job.resolve();
        return;
      }

      const located = parseNftErrors(outcome.stderr);
      const failed = new Set<NftJob>();
      for (const { line, text } of located) {
        const owner = owners[line];
        // An error in the structure (or one nft could not place) is everyone's error.
        if (line <= structureLines || !owner) {
          const error = commandError(this.#host.failure(outcome, text, line));
          for (const job of remaining) job.reject(error);
          return;
        }
        if (failed.has(owner)) continue;
        failed.add(owner);
        owner.reject(commandError(this.#host.failure(outcome, text, line)));
      }
      if (failed.size === 0) {
        const error = commandError(this.#host.failure(outcome));
        for (const job of remaining) job.reject(error);
        return;
      }
      remaining = remaining.filter((job) => !failed.has(job));
    }
  }
}
