import { z } from 'zod';

/** The VM's state as `vm.info` reports it. */
export const vmStateSchema = z.enum(['Created', 'Running', 'Shutdown', 'Paused', 'BreakPoint']);
/** The state of the VM inside a VMM: `Created`, `Running`, `Shutdown`, `Paused` or `BreakPoint`. */
export type VmState = z.infer<typeof vmStateSchema>;

/** Where a serial port or console goes. Always set both `serial` and `console`: the default `Tty` grabs a terminal. */
export const consoleModeSchema = z.enum(['Off', 'Pty', 'Tty', 'File', 'Socket', 'Null']);
/** Where a serial port or virtio console goes: `Off`, `Pty`, `Tty`, `File`, `Socket`, `Null`. */
export type ConsoleMode = z.infer<typeof consoleModeSchema>;

export const coreSchedulingModeSchema = z.enum(['Vm', 'Vcpu', 'Off']);
/** Which vCPU threads may share a physical core (core scheduling). */
export type CoreSchedulingMode = z.infer<typeof coreSchedulingModeSchema>;

export const imageTypeSchema = z.enum(['FixedVhd', 'Qcow2', 'Raw', 'Vhdx', 'Unknown']);
/** The format of a disk image (`Raw`, `Qcow2`, …). */
export type ImageType = z.infer<typeof imageTypeSchema>;

export const lockGranularitySchema = z.enum(['ByteRange', 'Full']);
/** How much of a disk image the VMM locks. */
export type LockGranularity = z.infer<typeof lockGranularitySchema>;

export const memoryRestoreModeSchema = z.enum(['Copy', 'OnDemand']);
/** How a restore brings the snapshot memory back (copy or on demand). */
export type MemoryRestoreMode = z.infer<typeof memoryRestoreModeSchema>;

export const migrationModeSchema = z.enum(['Precopy', 'Postcopy']);
/** How a live migration moves memory. */
export type MigrationMode = z.infer<typeof migrationModeSchema>;

export const timeoutStrategySchema = z.enum(['Cancel', 'Ignore']);
/** What a migration does when its downtime limit is exceeded. */
export type TimeoutStrategy = z.infer<typeof timeoutStrategySchema>;
