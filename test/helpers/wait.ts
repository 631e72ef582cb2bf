/** Waiting on a condition instead of sleeping a fixed time before a strict check. */

/** Resolves once `cond()` is true (checked every `everyMs`), or after `timeoutMs` whatever it says: the check after it decides. */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 5000, everyMs = 20): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond()) && Date.now() < end) await new Promise((r) => setTimeout(r, everyMs));
}
