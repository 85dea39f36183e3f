import { performance } from 'node:perf_hooks';

export interface Sample {
  /** Milliseconds per run, in run order. */
  readonly runs: readonly number[];
  readonly median: number;
  readonly p95: number;
  readonly min: number;
}

/** The p-th percentile (0–100) of `values`, nearest-rank. Throws on an empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new RangeError('percentile of an empty list');
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

export function summarize(runs: readonly number[]): Sample {
  return { runs, median: median(runs), p95: percentile(runs, 95), min: Math.min(...runs) };
}

/** Runs `fn` `warmup` times untimed, then `runs` times timed, one after another. */
export async function measure(
  fn: () => unknown,
  { runs = 10, warmup = 1 }: { runs?: number; warmup?: number } = {},
): Promise<Sample> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await fn();
    times.push(performance.now() - start);
  }
  return summarize(times);
}
