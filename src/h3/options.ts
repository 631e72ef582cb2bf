/** Validation of `H3ConnectionOptions` and the SETTINGS frame they imply. */
import { encodeSettings, SettingId } from '../codec/h3frame.js';
import { ErrorCode, OriginlinkError } from '../errors.js';
import type { H3ConnectionOptions } from './types.js';

export const DEFAULT_ENCODER_TABLE_CAPACITY = 4096;

/** Check every field once; a bad value is INVALID_CONFIG naming it. Returns a frozen copy. */
export function validateOptions(options: H3ConnectionOptions): Readonly<H3ConnectionOptions> {
  const bad = (msg: string): never => {
    throw new OriginlinkError(ErrorCode.INVALID_CONFIG, 'local', msg);
  };
  if (options.role !== 'client' && options.role !== 'server') bad(`H3 option role must be 'client' or 'server'`);
  for (const k of [
    'maxFieldSectionSize',
    'qpackMaxTableCapacity',
    'qpackBlockedStreams',
    'maxFrameSize',
    'qpackEncoderTableCapacity',
    'qpackMinReferenceSaving',
  ] as const) {
    const v = options[k];
    if ((k === 'qpackEncoderTableCapacity' || k === 'qpackMinReferenceSaving') && v === undefined) continue;
    if (!Number.isSafeInteger(v) || (v as number) < 0) bad(`H3 option ${k} must be a non-negative integer, got ${v}`);
  }
  return Object.freeze({ ...options });
}

/** Our SETTINGS frame (RFC 9114 §7.2.4.1, RFC 9204 §5). */
export function settingsFrame(o: H3ConnectionOptions): Uint8Array {
  return encodeSettings([
    [SettingId.QPACK_MAX_TABLE_CAPACITY, o.qpackMaxTableCapacity],
    [SettingId.MAX_FIELD_SECTION_SIZE, o.maxFieldSectionSize],
    [SettingId.QPACK_BLOCKED_STREAMS, o.qpackBlockedStreams],
  ]);
}
