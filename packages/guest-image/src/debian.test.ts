import { describe, expect, it } from 'vitest';
import { fetchDebianPackage, kernelPackageOf, parseAptRecord } from './debian.js';
import { GuestImageError } from './errors.js';

const META = `Package: linux-image-amd64
Source: linux-signed-amd64 (6.1.192+3)
Version: 6.1.192-3
Architecture: amd64
Depends: linux-image-6.1.0-57-amd64 (= 6.1.192-3)
Description: Linux for 64-bit PCs (meta-package)
 This package depends on the latest Linux kernel
 and modules for use on PCs.
SHA256: ${'a'.repeat(64)}

Package: linux-image-amd64
Version: 6.1.176-1
`;

describe('apt records', () => {
  it('parses the first record, continuation lines included', () => {
    const record = parseAptRecord(META);
    expect(record.Version).toBe('6.1.192-3');
    expect(record.Depends).toBe('linux-image-6.1.0-57-amd64 (= 6.1.192-3)');
    expect(record.Description?.split('\n')).toHaveLength(3);
  });

  it('follows a kernel metapackage to the versioned image it depends on', () => {
    expect(kernelPackageOf(parseAptRecord(META))).toBe('linux-image-6.1.0-57-amd64');
    expect(kernelPackageOf({ Package: 'linux-image-6.1.0-57-amd64' })).toBe('linux-image-6.1.0-57-amd64');
    expect(
      kernelPackageOf({
        Package: 'linux-image-cloud-amd64',
        Depends: 'foo | linux-image-6.1.0-57-cloud-amd64 (= 1)',
      }),
    ).toBe('linux-image-6.1.0-57-cloud-amd64');
  });

  it('refuses a package that is no kernel (BAD_PACKAGE)', () => {
    expect(() => kernelPackageOf({ Package: 'busybox-static', Depends: 'libc6' })).toThrow(
      expect.objectContaining({ code: 'BAD_PACKAGE' }),
    );
  });

  it('validates a package name before any command runs (INVALID_ARGUMENT)', async () => {
    for (const name of ['-oAPT::Foo=1', 'Busybox', 'a b', '']) {
      const error = await fetchDebianPackage(name, { cacheDir: '/nonexistent' }).catch((e: unknown) => e);
      expect(GuestImageError.isInstance(error) && error.code).toBe('INVALID_ARGUMENT');
    }
  });
});
