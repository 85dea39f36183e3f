/** The VMM's release, parsed from `vmm.ping` (never from the OpenAPI `info.version`, which has not moved since 2019). */
export interface ChvServerVersion {
  readonly major: number;
  readonly minor: number;
  /** `version` as the VMM reported it (e.g. `46.0.0`), or `build_version` when `version` did not parse. */
  readonly raw: string;
}

/** How the VMM reports errors; it changed twice. */
export type ChvErrorGeneration =
  /** ≤ v46: a plain-text body (Rust `Debug` output), status 500 for API errors. */
  | 'plain-text'
  /** v47–v52: a JSON array of messages outermost-first, status 500 for API errors. */
  | 'json-500'
  /**
   * v53+: the same array with 404 (no VM / no config), 400 (bad JSON), 429 (vCPU resize pending); every other
   * error, wrong-state and invalid config included, is still 500 (v53.0 `vmm/src/api/http/mod.rs`).
   */
  | 'json-status';

const versionPattern = /^v?(\d+)\.(\d+)/;

/** Parses `version` (`46.0.0`, `v46.0`), falling back to `build_version` (`v46.0-12-gabcdef`); 0.0 when neither parses. */
export function parseServerVersion(ping: {
  version: string;
  build_version?: string | null;
}): ChvServerVersion {
  for (const raw of [ping.version, ping.build_version ?? '']) {
    const match = versionPattern.exec(raw.trim());
    if (match) return { major: Number(match[1]), minor: Number(match[2]), raw };
  }
  return { major: 0, minor: 0, raw: ping.version };
}

export function errorGeneration(version: ChvServerVersion): ChvErrorGeneration {
  if (version.major >= 53) return 'json-status';
  if (version.major >= 47) return 'json-500';
  return 'plain-text';
}
