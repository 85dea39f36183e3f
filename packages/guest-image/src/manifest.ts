import { z } from 'zod';

/** The version of `manifest.json`'s layout. */
export const MANIFEST_VERSION = 1;

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);
const fileInfo = z.object({ sha256, size: z.number().int().nonnegative() }).strict();
const debPackage = z.object({ package: z.string(), version: z.string(), arch: z.string(), sha256 }).strict();

/** What `manifest.json` in an image directory holds: enough to tell whether a rebuild would change anything. */
export const imageManifestSchema = z
  .object({
    manifestVersion: z.literal(MANIFEST_VERSION),
    name: z.string(),
    created: z.string(),
    kernel: debPackage.extend({ release: z.string() }).strict(),
    busybox: debPackage,
    init: z.object({ sha256 }).strict(),
    /** The kernel-argument format the image's init reads (`GUEST_ARGS_VERSION`). */
    guestArgsVersion: z.number().int().positive(),
    /** Module names in the order the init loads them. */
    modules: z.array(z.string()),
    files: z.object({ vmlinux: fileInfo, 'initramfs.cpio.gz': fileInfo }).strict(),
    /** A hash of every input above: equal inputs, equal image, so a build with the same one is a no-op. */
    inputs: sha256,
  })
  .strict();

/** The parsed `manifest.json` of an image. */
export type ImageManifest = z.infer<typeof imageManifestSchema>;
