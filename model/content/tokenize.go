package content

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/clipperhouse/uax29/v2/words"
	"github.com/kljensen/snowball/english"
	"golang.org/x/text/unicode/norm"
)

// maxTokenBytes bounds a term: longer words (base64, URLs run together) are
// noise for matching and would only grow the dictionary.
const maxTokenBytes = 64

// Tokenize appends the terms of text to dst: the text is NFKC-normalised
// and split at Unicode word boundaries (UAX #29); words are lower-cased,
// Latin words lose their accents, English stop words go, words of ASCII
// letters are stemmed (Snowball English). Han and Hiragana, which UAX #29
// splits one character a word, are joined back into runs and each run gives
// its character bigrams (a run of one character gives that character).
// Segments with no letter or digit (spaces, punctuation, emoji) give
// nothing. Every term is valid UTF-8, non-empty and at most 64 bytes.
func Tokenize(dst []string, text string) []string {
	text = norm.NFKC.String(strings.ToValidUTF8(text, " "))
	var run []rune // pending Han/Hiragana characters, in order
	flush := func() {
		switch len(run) {
		case 0:
		case 1:
			dst = append(dst, string(run[0]))
		default:
			for i := 0; i+1 < len(run); i++ {
				dst = append(dst, string(run[i:i+2]))
			}
		}
		run = run[:0]
	}
	it := words.FromString(text)
	for it.Next() {
		seg := it.Value()
		if r, size := utf8.DecodeRuneInString(seg); size == len(seg) && ideographic(r) {
			run = append(run, unicode.ToLower(r))
			continue
		}
		flush()
		if w, ok := word(seg); ok {
			dst = append(dst, w)
		}
	}
	flush()
	return dst
}

// ideographic reports whether r belongs to a script written without spaces
// that UAX #29 splits one character at a time.
func ideographic(r rune) bool {
	return unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r)
}

// word turns one UAX #29 segment into a term; false when it gives none.
func word(seg string) (string, bool) {
	letters, digits, latin, ascii := 0, 0, true, true
	for _, r := range seg {
		switch {
		case unicode.IsLetter(r):
			letters++
			if r >= utf8.RuneSelf {
				ascii = false
				if !unicode.Is(unicode.Latin, r) {
					latin = false
				}
			}
		case unicode.IsDigit(r) || unicode.IsNumber(r):
			digits++
		case r >= utf8.RuneSelf && !unicode.Is(unicode.Mn, r) && r != '’' && r != 'ʼ':
			latin = false
		}
	}
	if letters+digits == 0 {
		return "", false
	}
	w := strings.ToLower(seg)
	if strings.ContainsAny(w, "’ʼ") {
		w = strings.NewReplacer("’", "'", "ʼ", "'").Replace(w)
	}
	// UAX #29 keeps "o'brien", "schindler's", "3.14", "e.g": trim what
	// may hang at the ends (ExtendNumLet '_', apostrophes) and the
	// possessive.
	w = strings.TrimFunc(w, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
	w = strings.TrimSuffix(w, "'s")
	if len(w) > 2 && w[1] == '\'' && strings.IndexByte("cdjlmnst", w[0]) >= 0 {
		w = w[2:] // French elision: l'amour, d'amélie
	} else if strings.HasPrefix(w, "qu'") {
		w = w[3:]
	}
	if w == "" || stop(w) {
		return "", false
	}
	if strings.ContainsRune(w, '\'') {
		w = strings.ReplaceAll(w, "'", "")
		if stop(w) {
			return "", false
		}
	}
	if latin && !ascii {
		w = fold(w)
		ascii = isASCII(w)
	}
	if digits == 0 && letters == 1 && ascii {
		return "", false // single Latin letters carry nothing
	}
	if ascii && digits == 0 && len(w) > 2 {
		w = english.Stem(w, false)
	}
	if w == "" || len(w) > maxTokenBytes {
		return "", false
	}
	return w, true
}

// fold removes the accents of a Latin word ("amélie" → "amelie").
func fold(w string) string {
	d := norm.NFD.String(w)
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(r)
		}
	}
	return norm.NFC.String(b.String())
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// stop reports English stop words: Snowball's list and the contractions
// written without their apostrophe.
func stop(w string) bool {
	if english.IsStopWord(w) {
		return true
	}
	switch w {
	case "dont", "doesnt", "didnt", "cant", "cannot", "wont", "isnt", "arent", "wasnt", "werent",
		"im", "ive", "id", "ill", "youre", "youve", "hes", "shes", "theyre", "weve", "thats",
		"would", "could", "also", "via", "us":
		return true
	}
	return false
}

// phrase is the whole-token form of a tag, a category or a short attribute
// value: NFKC, lower case, runs of spaces as one space, trimmed; "" when
// nothing is left or it is longer than 64 bytes.
func phrase(s string) string {
	s = strings.ToLower(norm.NFKC.String(strings.ToValidUTF8(s, " ")))
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxTokenBytes-2 {
		return ""
	}
	return s
}
