/** A message for a VM's detail page from the page that navigated there (create: "started, but …"). */
const notices = new Map<string, string>();

export function setNotice(vm: string, message: string): void {
  notices.set(vm, message);
}

/** The notice left for `vm`, once. */
export function takeNotice(vm: string): string | undefined {
  const message = notices.get(vm);
  notices.delete(vm);
  return message;
}
