/** The package's version, and what `originlink --version` / `fetch -V` print (curl -V's first lines, for us). */
import { readFileSync } from 'node:fs';

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function versionText(): string {
  return [
    `originlink ${packageVersion()} (Node.js ${process.version}, ${process.platform}-${process.arch})`,
    'Protocols: http https',
    'Features: HTTP/1.1 HTTP/2 HTTP/3 TLS-session-resumption 0-RTT TCP-Fast-Open Happy-Eyeballs',
    'Native addons, the QUIC build and kernel features: originlink info',
  ].join('\n');
}
