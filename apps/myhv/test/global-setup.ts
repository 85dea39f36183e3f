import { ensureBundle } from '../scripts/ensure-bundle.js';

/** The e2e tests run the bundle as users do: build it first if the sources changed. */
export default function setup(): void {
  ensureBundle();
}
