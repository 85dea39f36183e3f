import { commandError } from './command-error.js';
import type { CommandOutcome, HostCommands } from './host-commands.js';
import {
  IptablesModel,
  type IptablesNames,
  type IptablesTable,
  type JobLines,
  parseIptablesSave,
} from './iptables-model.js';
import { type PendingJob, submitJob } from './pending-job.js';
import { WaveQueue } from './wave-queue.js';

interface IptablesJob extends PendingJob<unknown> {
  readonly plan: (model: IptablesModel) => unknown;
}

const tableOrder: readonly IptablesTable[] = ['nat', 'filter'];

/**
 * Runs the iptables work of every operation issued in the same tick as one read (`iptables-save`) and one atomic
 * write (`iptables-restore -w --noflush`). Each job plans against the saved state, so check-before-add costs no
 * process per rule; a job whose line `iptables-restore` rejects is failed alone and the others are planned and
 * written again from a fresh read.
 */
export class IptablesBatcher {
  readonly #host: HostCommands;
  readonly #names: IptablesNames;
  readonly #queue: WaveQueue<IptablesJob>;

  constructor(host: HostCommands, names: IptablesNames) {
    this.#host = host;
    this.#names = names;
    this.#queue = new WaveQueue((jobs) => this.#runWave(jobs));
  }

  /** Plans `plan` against the current rules in the next wave and writes what it recorded; resolves with its value. */
  run<T>(plan: (model: IptablesModel) => T, signal?: AbortSignal): Promise<T> {
    return submitJob<unknown, IptablesJob>(
      this.#queue,
      (settle) => ({ ...settle, plan }),
      signal,
    ) as Promise<T>;
  }

  /** The current rules, read now. */
  async read(signal?: AbortSignal): Promise<IptablesModel> {
    const outcome = await this.#host.run('iptables-save', [], signal ? { signal } : {});
    if (outcome.exitCode !== 0) throw commandError(this.#host.failure(outcome));
    return new IptablesModel(parseIptablesSave(outcome.stdout), this.#names);
  }

  async #runWave(jobs: IptablesJob[]): Promise<void> {
    let remaining = jobs;
    while (remaining.length > 0) {
      let model: IptablesModel;
      try {
        model = await this.read();
      } catch (error) {
        for (const job of remaining) job.reject(error);
        return;
      }
      const planned: { job: IptablesJob; value: unknown; lines: JobLines }[] = [];
      for (const job of remaining) {
        model.beginJob();
        try {
          const value = job.plan(model);
          planned.push({ job, value, lines: model.jobLines() });
        } catch (error) {
          job.reject(error);
        }
      }

      const script: string[] = [];
      const owners: (IptablesJob | undefined)[] = [];
      const push = (line: string, owner?: IptablesJob) => {
        script.push(line);
        owners[script.length] = owner;
      };
      for (const table of tableOrder) {
        const structure = [...model.structure[table].declare, ...model.structure[table].jump];
        if (structure.length === 0 && planned.every((p) => p.lines[table].length === 0)) continue;
        push(`*${table}`);
        for (const line of structure) push(line);
        for (const p of planned) for (const line of p.lines[table]) push(line, p.job);
        push('COMMIT');
      }
      if (script.length === 0) {
        for (const p of planned) p.job.resolve(p.value);
        return;
      }

      let outcome: CommandOutcome;
      try {
        outcome = await this.#host.run('iptables-restore', ['-w', '--noflush'], {
          input: `${script.join('\n')}\n`,
        });
      } catch (error) {
        for (const p of planned) p.job.reject(error);
        return;
      }
      if (outcome.exitCode === 0) {
        for (const p of planned) p.job.resolve(p.value);
        return;
      }
      const line = Number(/line (\d+) failed/.exec(outcome.stderr)?.[1] ?? Number.NaN);
      const owner = owners[line];
      const error = commandError(
        this.#host.failure(outcome, undefined, Number.isNaN(line) ? undefined : line),
      );
      if (!owner) {
        for (const p of planned) p.job.reject(error);
        return;
      }
      owner.reject(error);
      // Re-read before planning again: legacy iptables commits table by table, so part may have been applied.
      remaining = planned.map((p) => p.job).filter((job) => job !== owner);
    }
  }
}
