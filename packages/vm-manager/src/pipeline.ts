import { performance } from 'node:perf_hooks';
import { crashPoint } from './crash-hook.js';
import { throwIfAborted, VmManagerError, type VmManagerErrorCode } from './errors.js';
import type { StepEvent } from './events.js';
import type { VmOperation } from './state-store.js';

export interface PipelineStep {
  readonly name: string;
  /**
   * Writes what the step is about to create into the record (a TAP name, forward rules, socket paths) so that
   * the "in progress" write before it runs carries it: after a crash, the undo knows what to look for.
   */
  intent?(): void;
  /**
   * Whether "step X in progress" is written before X runs. Default true; false only for steps that create
   * nothing a crash could leak (API calls to a VMM that is already recorded, the final write itself).
   */
  readonly recordBefore?: boolean;
  /** Must be idempotent: after a crash the same step may run again over its own partial work. */
  run(signal: AbortSignal | undefined): Promise<void>;
  /** Undoes the step, including a partial run; must tolerate "nothing to undo". */
  undo?(): Promise<void>;
  /**
   * Independent steps run one after another at the same time as this one (each with its own events and failure).
   * They must create nothing a crash could leak: no undo, no "in progress" write of their own (`recordBefore:
   * false`).
   */
  readonly alongside?: readonly (PipelineStep & { readonly recordBefore: false; readonly undo?: never })[];
}

export interface PipelineContext {
  readonly vm: string;
  readonly op: VmOperation;
  readonly signal?: AbortSignal;
  /** Persists "step X is in progress" before X runs. */
  readonly beforeStep: (step: string) => Promise<void>;
  readonly emit: (event: StepEvent) => void;
}

/** Which failure code a step's failure maps to, unless the cause says better. */
const stepCodes: Record<string, VmManagerErrorCode> = {
  ip: 'NETWORK_FAILED',
  network: 'NETWORK_FAILED',
  forwards: 'NETWORK_FAILED',
  'network-ensure': 'NETWORK_FAILED',
  'forwards-ensure': 'NETWORK_FAILED',
  'forward-add': 'NETWORK_FAILED',
  shares: 'STORAGE_FAILED',
};

function causeCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;
}

/** Wraps a step's failure in a VmManagerError that names the VM and the step and keeps the backend error as cause. */
export function stepError(error: unknown, vm: string, step: string): VmManagerError {
  if (VmManagerError.isInstance(error)) return error;
  const inner = causeCode(error);
  const passThrough: readonly string[] = ['ABORTED', 'TIMEOUT', 'CONFLICT', 'INVALID_ARGUMENT'];
  const code: VmManagerErrorCode =
    inner && passThrough.includes(inner) ? (inner as VmManagerErrorCode) : (stepCodes[step] ?? 'VMM_FAILED');
  const message = error instanceof Error ? error.message : String(error);
  // A VMM call's error already starts with the endpoint ("vm.boot failed: …"): say it once.
  const said = message.startsWith(`${step} failed: `) ? message : `${step} failed: ${message}`;
  return new VmManagerError(code, `${vm}: ${said}`, {
    cause: error,
    details: { vm, step },
  });
}

/**
 * `step` with `others` run alongside it when all of them may be (no undo, no "in progress" write); otherwise
 * `others` first, then `step`, as before.
 */
export function withAlongside(step: PipelineStep, others: readonly PipelineStep[]): PipelineStep[] {
  const independent = (s: PipelineStep): s is NonNullable<PipelineStep['alongside']>[number] =>
    s.recordBefore === false && s.undo === undefined && s.alongside === undefined;
  if (others.length === 0) return [step];
  if (!others.every(independent)) return [...others, step];
  return [{ ...step, alongside: others.filter(independent) }];
}

/** Runs `steps` in order; on failure undoes the failed step and every completed one in reverse, then throws. */
export async function runPipeline(ctx: PipelineContext, steps: readonly PipelineStep[]): Promise<void> {
  const completed: PipelineStep[] = [];
  for (const step of steps) {
    const started = performance.now();
    // Which of the step and the work alongside it failed (the step's own failure when both did).
    let failed = step;
    try {
      throwIfAborted(ctx.signal);
      step.intent?.();
      if (step.recordBefore !== false) await ctx.beforeStep(step.name);
      const besides = async () => {
        for (const part of step.alongside ?? []) {
          const partStarted = performance.now();
          failed = part;
          ctx.emit({ type: 'step', vm: ctx.vm, op: ctx.op, step: part.name, phase: 'start' });
          await part.run(ctx.signal);
          ctx.emit({
            type: 'step',
            vm: ctx.vm,
            op: ctx.op,
            step: part.name,
            phase: 'done',
            ms: performance.now() - partStarted,
          });
          crashPoint(ctx.op, part.name);
        }
      };
      ctx.emit({ type: 'step', vm: ctx.vm, op: ctx.op, step: step.name, phase: 'start' });
      const [own, beside] = await Promise.allSettled([step.run(ctx.signal), besides()]);
      if (own!.status === 'rejected') {
        failed = step;
        throw own!.reason;
      }
      if (beside!.status === 'rejected') throw beside!.reason;
    } catch (error) {
      const wrapped = stepError(error, ctx.vm, failed.name);
      ctx.emit({
        type: 'step',
        vm: ctx.vm,
        op: ctx.op,
        step: failed.name,
        phase: 'failed',
        ms: performance.now() - started,
        error: wrapped.message,
      });
      const undoErrors = await undoSteps(ctx, [...completed, step].reverse());
      if (undoErrors.length > 0)
        Object.assign(wrapped.details, { undoErrors: undoErrors.map((e) => e.message) });
      throw wrapped;
    }
    ctx.emit({
      type: 'step',
      vm: ctx.vm,
      op: ctx.op,
      step: step.name,
      phase: 'done',
      ms: performance.now() - started,
    });
    completed.push(step);
    crashPoint(ctx.op, step.name);
  }
}

/** Undoes steps in the given order, carrying on past failures; returns them. */
export async function undoSteps(ctx: PipelineContext, steps: readonly PipelineStep[]): Promise<Error[]> {
  const errors: Error[] = [];
  for (const step of steps) {
    if (!step.undo) continue;
    const started = performance.now();
    ctx.emit({ type: 'step', vm: ctx.vm, op: ctx.op, step: step.name, phase: 'undo' });
    try {
      await step.undo();
      ctx.emit({
        type: 'step',
        vm: ctx.vm,
        op: ctx.op,
        step: step.name,
        phase: 'undone',
        ms: performance.now() - started,
      });
    } catch (error) {
      errors.push(stepError(error, ctx.vm, `undo ${step.name}`));
    }
  }
  return errors;
}
