/** A URL (a proxy's, a Redis one) with its credentials replaced, for messages and logs. */
export function redact(url: string): string {
  // Everything between the scheme's // and the last @ goes: a password may hold / or @, a URL that did not parse
  // may be cut anywhere, and a user alone can be a token.
  const at = url.lastIndexOf('@');
  if (at < 0) return url;
  const slashes = url.indexOf('//');
  const from = slashes >= 0 && slashes < at ? slashes + 2 : 0;
  return `${url.slice(0, from)}***${url.slice(at)}`;
}
