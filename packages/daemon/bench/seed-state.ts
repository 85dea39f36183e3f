// The records apps/myhv's start-up bench lists (one seeder for both, so the two sections compare like with like).
export { seedState } from '../../../apps/myhv/bench/seed-state.js';

/** The name `seedState` gives VM `i`: `vm-0000`, `vm-0001`, … */
export function seededName(i: number): string {
  return `vm-${String(i).padStart(4, '0')}`;
}
