import { fetchDebianPackage, fetchKernelPackage } from '../../src/debian.js';
import { GuestImageError } from '../../src/errors.js';

/** Persists across runs on this machine: the kernel .deb is ~70 MB, fetched once per cache. */
export const cacheDir = process.env.MYHV_TEST_DEB_CACHE ?? '/var/cache/myhv-test/debs';

/**
 * Fetches busybox-static and linux-image-amd64 into the cache (a build then finds them there); returns why a host
 * without network cannot, for the tests to skip with, or undefined.
 */
export async function debianPackagesUnavailable(): Promise<string | undefined> {
  try {
    await fetchDebianPackage('busybox-static', { cacheDir });
    await fetchKernelPackage('linux-image-amd64', { cacheDir });
    return undefined;
  } catch (error) {
    if (!GuestImageError.isInstance(error)) throw error;
    return `apt cannot fetch Debian packages here (${error.code}: ${error.message})`;
  }
}
