/** How `openManager` runs each VM's serial relay; set by `run` from `CliIo.serialRelay` (the bundle passes itself). */
let serialRelayCommand: { readonly command: string; readonly args: readonly string[] } | undefined;

export function useSerialRelay(command: {
  readonly command: string;
  readonly args: readonly string[];
}): void {
  serialRelayCommand = command;
}

/** Undefined: vm-manager's own relay bin (from sources or an install). */
export function serialRelay(): { readonly command: string; readonly args: readonly string[] } | undefined {
  return serialRelayCommand;
}
