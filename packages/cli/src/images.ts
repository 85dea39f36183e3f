import { join } from 'node:path';
import { GuestImageError, ImageStore, type StoredImage, validateImageName } from '@my-hypervisor/guest-image';
import type { CliConfig } from './config.js';
import { invalidValue } from './errors.js';

/** The image every `vm create` without --kernel or --image boots, when it exists. */
export const DEFAULT_IMAGE = 'default';

/** The image store under the state directory (`<stateDir>/images`). */
export function imageStore(config: Pick<CliConfig, 'stateDir'>): ImageStore {
  return new ImageStore({ dir: join(config.stateDir, 'images') });
}

/** Where `image build` keeps downloaded `.deb` files between builds (`<stateDir>/cache/debs`). */
export function debCacheDir(config: Pick<CliConfig, 'stateDir'>): string {
  return join(config.stateDir, 'cache', 'debs');
}

/** An image name argument, checked before it names a directory; INVALID_ARGUMENT naming `field` (exit 2). */
export function parseImageName(value: unknown, field = 'name'): string {
  try {
    return validateImageName(value);
  } catch (error) {
    const shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
    throw invalidValue(
      field,
      `${shown} is not an image name`,
      "image names are 1–32 lowercase letters, digits and '-', starting with a letter",
      error,
    );
  }
}

/** Image `name`, or undefined when the store has no such image (other problems are thrown). */
export async function findImage(store: ImageStore, name: string): Promise<StoredImage | undefined> {
  try {
    return await store.inspect(name);
  } catch (error) {
    if (GuestImageError.isInstance(error) && error.code === 'NOT_FOUND') return undefined;
    throw error;
  }
}

/**
 * Fills a spec input's `kernel` and `initramfs` from its `image` (a VM made from an image boots that image's
 * files) unless it names a kernel itself. `field` is what the user wrote the image name in (`--image`, `image`).
 */
export async function applyImage(
  input: Record<string, unknown>,
  store: ImageStore,
  field: string,
): Promise<StoredImage | undefined> {
  if (input.image === undefined || input.kernel !== undefined) return undefined;
  const image = await store.inspect(parseImageName(input.image, field));
  input.kernel = image.kernel;
  input.initramfs ??= image.initramfs;
  return image;
}
