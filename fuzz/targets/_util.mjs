// Shared by the fuzz targets: split an input into chunks whose sizes come from its first byte,
// so stream parsers see every way of being fed (whole, byte by byte, odd splits).
export function chunks(data) {
  if (data.length === 0) return [];
  const step = (data[0] % 17) + 1;
  const body = data.subarray(1);
  if (data[0] >= 240) return [body];
  const out = [];
  for (let i = 0; i < body.length; i += step) out.push(body.subarray(i, i + step));
  return out;
}

/** Rethrow anything that is not one of the expected typed errors: that is a bug the fuzzer found. */
export function expectOnly(fn, ...types) {
  try {
    fn();
  } catch (e) {
    if (!types.some((t) => e instanceof t)) throw e;
  }
}
