// The service config loader: a config or a ConfigError naming the field, nothing else.
import { ConfigError, parseConfig } from '../../dist/service/config.js';
import { expectOnly } from './_util.mjs';

export function fuzz(data) {
  expectOnly(() => parseConfig(data.toString('utf8'), 'fuzz.yaml', '/nonexistent-fuzz-dir'), ConfigError);
}
