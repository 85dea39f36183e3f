/** The Rust virtiofsd (gitlab.com/virtio-fs/virtiofsd) or the C one shipped with QEMU ≤ 7.2. */
export type VirtiofsdFlavour = 'rust' | 'c';

/** How the daemon isolates itself: its own namespaces (the default), a chroot, or nothing (Rust only). */
export type VirtiofsdSandbox = 'namespace' | 'chroot' | 'none';

/** What `detectVirtiofsd` learnt about a binary. */
export interface VirtiofsdInfo {
  /** The absolute path that is spawned, and that adoption checks `/proc/<pid>/cmdline` against. */
  readonly binary: string;
  readonly flavour: VirtiofsdFlavour;
  /** As printed by `--version`, when it could be read. */
  readonly version?: string;
  /** `--readonly` exists (newer Rust builds). The C build has no read-only mode. */
  readonly supportsReadOnly: boolean;
  /** The `sandbox` values this build accepts; empty when it has no sandbox option. */
  readonly sandboxModes: readonly VirtiofsdSandbox[];
}

/**
 * Tells the flavour from `--version` and `--help` output. The Rust build documents `--shared-dir`; the C build
 * `-o source=PATH`. Returns undefined for anything else.
 */
export function parseVirtiofsdInfo(
  binary: string,
  versionText: string,
  helpText: string,
): VirtiofsdInfo | undefined {
  const text = `${versionText}\n${helpText}`;
  const rust = /--shared-dir\b/.test(helpText);
  const c = !rust && /source=PATH/.test(helpText);
  if (!rust && !c) return undefined;
  if (rust) {
    const version = /^virtiofsd(?: backend)?\s+v?(\d+\.\d+(?:\.\d+)?\S*)/m.exec(versionText)?.[1];
    return {
      binary,
      flavour: 'rust',
      ...(version ? { version } : {}),
      supportsReadOnly: /--readonly\b/.test(helpText),
      sandboxModes: /--sandbox\b/.test(helpText) ? ['namespace', 'chroot', 'none'] : [],
    };
  }
  const version = /virtiofsd version\s+(\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1];
  return {
    binary,
    flavour: 'c',
    ...(version ? { version } : {}),
    supportsReadOnly: false,
    sandboxModes: /sandbox=namespace\|chroot/.test(helpText) ? ['namespace', 'chroot'] : [],
  };
}
