const HOST_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** What a host id may be, for messages: `"x y" is not a host id: ${HOST_ID_RULE}`. */
export const HOST_ID_RULE: string = "1–63 letters, digits, '.', '_', '-', starting with a letter or digit";

/**
 * True when `id` can name a host in the cluster (`HostInfo.id`): it is one segment of an etcd key. `register`
 * refuses any other id; a caller checks it first to name its own option (`myhvd --host-id`).
 */
export function isHostId(id: string): boolean {
  return HOST_ID.test(id);
}
