package content

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTokenize(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     []string
	}{
		{"english stemming", "Running runners ran quickly", []string{"run", "runner", "ran", "quick"}},
		{"stop words go", "The Lord of the Rings", []string{"lord", "ring"}},
		{"possessive and contraction", "Schindler's List, don't you’re", []string{"schindler", "list"}},
		{"punctuation and years", "Toy Story (1995): sci-fi!!", []string{"toy", "stori", "1995", "sci", "fi"}},
		{"numbers kept whole", "Apollo 13 costs 3.14 or 1,000", []string{"apollo", "13", "cost", "3.14", "1,000"}},
		{"accents folded", "Amélie ÉCOLE naïve", []string{"ameli", "ecol", "naiv"}},
		{"french elision", "d'Amélie l'amour", []string{"ameli", "amour"}},
		{"NFKC width and ligatures", "ｆｕｌｌｗｉｄｔｈ ﬁlm", []string{"fullwidth", "film"}},
		{"cyrillic lower-cased, not stemmed", "Москва Слезам", []string{"москва", "слезам"}},
		{"emoji and symbols give nothing", "👍 🐶 ★ — …", nil},
		{"single latin letters dropped", "x Malcolm X", []string{"malcolm"}},
		{"chinese bigrams", "中华人民共和国", []string{"中华", "华人", "人民", "民共", "共和", "和国"}},
		{"one han character alone", "猫", []string{"猫"}},
		{"han runs break at punctuation", "你好，世界", []string{"你好", "世界"}},
		{"japanese: katakana word, kana and kanji bigrams", "東京タワーに行った", []string{"東京", "タワー", "に行", "行っ", "った"}},
		{"mixed scripts", "Crouching Tiger 卧虎藏龙 (2000)", []string{"crouch", "tiger", "卧虎", "虎藏", "藏龙", "2000"}},
		{"invalid utf-8 is a space", "ab\xffcd", []string{"ab", "cd"}},
		{"empty", "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Tokenize(nil, c.in); !slices.Equal(got, c.want) {
				t.Fatalf("Tokenize(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestPhrase(t *testing.T) {
	for in, want := range map[string]string{
		"  Dark   Comedy ":          "dark comedy",
		"Sci-Fi":                    "sci-fi",
		"ＳＦ":                        "sf",
		"":                          "",
		strings.Repeat("long ", 20): "",
	} {
		if got := phrase(in); got != want {
			t.Errorf("phrase(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzTokenize(f *testing.F) {
	for _, s := range []string{"Toy Story (1995)", "中华人民共和国", "東京タワー", "d'Amélie", "ab\xffcd", "ｆｕｌｌ", "e.g. 3.14 __init__", "\u0301\u0301a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, tok := range Tokenize(nil, s) {
			if tok == "" || !utf8.ValidString(tok) || len(tok) > maxTokenBytes {
				t.Fatalf("Tokenize(%q) gave the term %q", s, tok)
			}
			if strings.ContainsAny(tok, " \t\n#@$") {
				t.Fatalf("Tokenize(%q) gave %q, which holds a space or a phrase prefix", s, tok)
			}
		}
		if p := phrase(s); p != "" && (!utf8.ValidString(p) || len(p) > maxTokenBytes) {
			t.Fatalf("phrase(%q) = %q", s, p)
		}
	})
}
