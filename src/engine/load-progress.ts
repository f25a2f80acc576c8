/**
 * Progress of long one-off work while the engine loads (today: writing the int8 weights beside the
 * export, ~3.2 GB and about a minute for Phi-4-mini, once). The work runs in the engine's worker; the
 * facade republishes its reports on this diagnostics channel of the main thread, so whoever shows
 * progress (npm start on a terminal) subscribes without any option threading through the app.
 */
import diagnosticsChannel from 'node:diagnostics_channel';

export interface LoadProgress {
  /** What is being done, for the person waiting ("writing int8 weights"). */
  task: string;
  /** Work done so far and in all, in `unit`s. */
  done: number;
  total: number;
  unit: 'bytes' | 'items' | 'seconds';
}

export const LOAD_PROGRESS_CHANNEL = 'phi4-local-server:engine-load-progress';

/** Messages are LoadProgress objects. */
export const loadProgressChannel = diagnosticsChannel.channel(LOAD_PROGRESS_CHANNEL);
