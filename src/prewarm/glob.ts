/**
 * Globs over repository names (and `<repository>:<tag>`), as operators write them for
 * notifications: `*` and `?` stay within one path component, `**` crosses them. Compiled
 * once to an anchored regular expression; no other metacharacter means anything.
 */

/** Why `pattern` is not a glob this matcher takes, or undefined when it is one. */
export function globProblem(pattern: string): string | undefined {
  if (pattern === '') return 'an empty glob matches nothing';
  if (/\*{3,}/.test(pattern)) return 'more than two * in a row';
  if (/[^/:]\*\*|\*\*[^/:]/.test(pattern)) return '** must stand for whole path components (a/**, **/b, a/**/b)';
  return undefined;
}

/** `pattern` as a predicate; the caller has checked it with globProblem. */
export function compileGlob(pattern: string): (text: string) => boolean {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*' && pattern[i + 1] === '*') {
      i++;
      // `a/**/b` also matches `a/b`: the component and its slash are optional together.
      if (pattern[i + 1] === '/') {
        i++;
        source += '(?:.*/)?';
      } else source += '.*';
    } else if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  const re = new RegExp(`^${source}$`);
  return (text) => re.test(text);
}
