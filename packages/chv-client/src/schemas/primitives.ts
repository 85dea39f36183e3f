import { z } from 'zod';

/** The VM's state as `vm.info` reports it. */
export const vmStateSchema = z.enum(['Created', 'Running', 'Shutdown', 'Paused', 'BreakPoint']);
export type VmState = z.infer<typeof vmStateSchema>;

/** Where a serial port or console goes. Always set both `serial` and `console`: the default `Tty` grabs a terminal. */
export const consoleModeSchema = z.enum(['Off', 'Pty', 'Tty', 'File', 'Socket', 'Null']);
export type ConsoleMode = z.infer<typeof consoleModeSchema>;

export const coreSchedulingModeSchema = z.enum(['Vm', 'Vcpu', 'Off']);
export type CoreSchedulingMode = z.infer<typeof coreSchedulingModeSchema>;

export const imageTypeSchema = z.enum(['FixedVhd', 'Qcow2', 'Raw', 'Vhdx', 'Unknown']);
export type ImageType = z.infer<typeof imageTypeSchema>;

export const lockGranularitySchema = z.enum(['ByteRange', 'Full']);
export type LockGranularity = z.infer<typeof lockGranularitySchema>;

export const memoryRestoreModeSchema = z.enum(['Copy', 'OnDemand']);
export type MemoryRestoreMode = z.infer<typeof memoryRestoreModeSchema>;

export const migrationModeSchema = z.enum(['Precopy', 'Postcopy']);
export type MigrationMode = z.infer<typeof migrationModeSchema>;

export const timeoutStrategySchema = z.enum(['Cancel', 'Ignore']);
export type TimeoutStrategy = z.infer<typeof timeoutStrategySchema>;
