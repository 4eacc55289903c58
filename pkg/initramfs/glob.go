package initramfs

// globMatch reports whether s matches the shell pattern as fnmatch(3)
// without flags does, which kmod uses for the patterns of modules.alias.
// '*' matches any string (including '/'), '?' any one byte, "[...]" a set
// of bytes with ranges and '!' or '^' negation, and a backslash makes the
// next byte literal. A '[' without a closing ']' is a literal '['. Matching
// is by byte, which is enough because modaliases are ASCII.
func globMatch(pattern, s string) bool {
	px, sx := 0, 0
	// After a '*', starPx is the pattern position past it and starSx the
	// next position in s that the star will try to absorb on a mismatch.
	starPx, starSx := -1, -1
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			if pattern[px] == '*' {
				px++
				starPx, starSx = px, sx
				continue
			}
			if sx < len(s) {
				if n, ok := matchOne(pattern[px:], s[sx]); ok {
					px += n
					sx++
					continue
				}
			}
		}
		if starPx >= 0 && starSx < len(s) {
			starSx++
			px, sx = starPx, starSx
			continue
		}
		return false
	}
	return true
}

// matchOne matches the byte c against the single-byte element that the
// pattern starts with ('?', a set, an escaped or a plain byte). It returns
// the length of that element in the pattern and whether c matched.
func matchOne(pattern string, c byte) (int, bool) {
	switch pattern[0] {
	case '?':
		return 1, true
	case '[':
		if n, ok, valid := matchSet(pattern, c); valid {
			return n, ok
		}
		return 1, c == '['
	case '\\':
		if len(pattern) > 1 {
			return 2, c == pattern[1]
		}
	}
	return 1, c == pattern[0]
}

// matchSet matches c against the set that the pattern starts with. valid is
// false when the set has no closing ']'.
func matchSet(pattern string, c byte) (n int, ok, valid bool) {
	i := 1
	negate := i < len(pattern) && (pattern[i] == '!' || pattern[i] == '^')
	if negate {
		i++
	}
	matched := false
	for first := true; i < len(pattern); first = false {
		if pattern[i] == ']' && !first {
			return i + 1, matched != negate, true
		}
		lo := pattern[i]
		if lo == '\\' && i+1 < len(pattern) {
			i++
			lo = pattern[i]
		}
		i++
		hi := lo
		if i+1 < len(pattern) && pattern[i] == '-' && pattern[i+1] != ']' {
			hi = pattern[i+1]
			i += 2
		}
		if lo <= c && c <= hi {
			matched = true
		}
	}
	return 0, false, false
}
