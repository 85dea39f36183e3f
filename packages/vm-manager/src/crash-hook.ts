/**
 * Test hook for crash safety: with `MYHV_CRASH_AFTER=<op>:<step>` (e.g. `create:network`), the process dies with
 * SIGKILL right after that pipeline step completes — no cleanup, no finally blocks, like a power cut or OOM kill.
 * Tests use it to prove `reconcile` repairs a crash at every step.
 */
export const CRASH_AFTER_ENV = 'MYHV_CRASH_AFTER';

export function crashPoint(op: string, step: string): void {
  const target = process.env[CRASH_AFTER_ENV];
  if (target && target === `${op}:${step}`) process.kill(process.pid, 'SIGKILL');
}
