/** The owner tag on our port forwards: reconcile removes forwards with this prefix that no VM owns. */
export const FORWARD_OWNER_PREFIX = 'myhv-';

/** The owner a VM's forwards carry. */
export function forwardOwner(vmId: string): string {
  return `${FORWARD_OWNER_PREFIX}${vmId}`;
}

/** The VM id in one of our forward owners, or undefined for a forward someone else installed. */
export function vmIdOfForwardOwner(owner: string | undefined): string | undefined {
  return owner?.startsWith(FORWARD_OWNER_PREFIX) ? owner.slice(FORWARD_OWNER_PREFIX.length) : undefined;
}
