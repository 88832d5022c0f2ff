/**
 * A path as a lenient upstream reads it (the sandbox's `lenientPaths`): each segment's `;params`
 * dropped, the whole path percent-decoded until it no longer changes (`%252F` → `%2F` → `/`),
 * Unicode look-alikes folded (NFKC: `．` → `.`), backslashes read as slashes, then empty and dot
 * segments resolved. Returns the decoded path.
 */
export function lenientPath(rawPath: string): string {
  let path = rawPath
    .split('/')
    .map((s) => s.split(';')[0]!)
    .join('/');
  for (let i = 0; i < 4; i++) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      break;
    }
    if (decoded === path) break;
    path = decoded;
  }
  const out: string[] = [];
  for (const seg of path.normalize('NFKC').replaceAll('\\', '/').split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return `/${out.join('/')}`;
}
