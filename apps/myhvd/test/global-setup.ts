import { ensureBundle } from '../../myhv/scripts/ensure-bundle.js';

/** myhvd runs the myhv bundle: build it first if the sources changed. */
export default function setup(): void {
  ensureBundle();
}
