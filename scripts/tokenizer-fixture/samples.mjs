// Hand-written parity samples for the tokenizer: several scripts and languages, emoji, numbers,
// whitespace runs, code, contractions, special-token strings and edge cases. Each sample is
// [name, text]; make-fixture.mjs adds generated ones and encodes all with @lenml/tokenizers.

const english = [
  ["english-prose", `The committee met on a grey Tuesday morning to decide what to do about the bridge. Nobody had expected the river to rise so quickly; the engineers' report, filed three weeks earlier, had called the risk "moderate at worst". By nine o'clock the water had reached the second marker, and by noon it was lapping at the deck.

"We can't wait for the state inspectors," said the mayor, folding her glasses. "If it goes, it goes with the gas main attached." She wasn't exaggerating: the main ran under the eastern span, and a rupture would cut heating to four thousand homes in the middle of February.`],
  ["english-dialogue", `"Where've you been?" asked Tom.
"Out," said Jess. "Walking. Thinking. You know."
"I don't, actually. You'd said you'd be back by six, and it's nearly ten."
"Well, I'm back now, aren't I? Isn't that what matters?"
He didn't answer. The kettle clicked off; neither of them moved to pour it.`],
  ["english-technical", `To reproduce the failure, build with -O2 and run the stress test for at least 10,000 iterations (roughly 3.5 minutes on a 16-core machine). The crash appears in ~0.3% of runs; its stack trace always ends in free() called from ~Buffer(). Setting MALLOC_CHECK_=3 makes it deterministic. Root cause: Buffer's move constructor didn't null the source pointer, so both objects freed the same block (a classic double free).`],
  ["english-lists", `Shopping list:
- 2 lbs. of flour (unbleached!)
- 1 dozen eggs -- free-range, if possible
- milk (whole, NOT skim)
* butter; salted & unsalted
  1. apples: Granny Smith, Honeycrisp, Pink Lady
  2. pears?
  3) "whatever's cheap"

Total budget: $45.00 (≈ €41.50 or £35.20) — don't go over!`],
  ["english-legal", `THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.`],
];

const languages = [
  ["german", `Die Donaudampfschifffahrtsgesellschaft war über Jahrzehnte hinweg ein Begriff in Österreich. Größere Schiffe fuhren von Wien bis Budapest; die Fahrgäste genossen Kaffee, Kuchen und die vorbeiziehende Landschaft. „Das war noch Reisen“, sagt meine Großmutter heute, „nicht dieses Herumgehetze.“ Straße, Maß, Fuß — und natürlich: Grüß Gott! ÄÖÜ äöü ß ẞ.`],
  ["french", `L'été dernier, nous sommes allés en Provence. Aujourd'hui encore, je me souviens de l'odeur de la lavande et du bruit des cigales. « Qu'est-ce que tu veux manger ? » m'a demandé ma tante. J'ai répondu : « N'importe quoi, pourvu qu'il y ait du pain frais ! » Ça, c'était la belle vie… Œuvre, cœur, naïf, Noël, où, déjà-vu.`],
  ["spanish-portuguese", `¿Dónde está la biblioteca? ¡No lo sé! El niño comió paella con su abuela en Valencia. Em São Paulo, a reunião começou às nove horas; ninguém chegou atrasado, graças a Deus. Ação, coração, pão, maçã.`],
  ["russian", `Москва — столица России, крупнейший по численности населения город страны. Вчера мы гуляли по Красной площади, а потом пили чай с вареньем. «Ты когда-нибудь был в Санкт-Петербурге?» — спросил он. Съешь же ещё этих мягких французских булок, да выпей чаю. ЁЛКА, ёлка, Ёж.`],
  ["ukrainian-serbian", `Київ — місто на Дніпрі. Ґанок, їжак, єнот. Београд је главни град Србије; Љубљана, Џеф, Ђорђе, Њујорк.`],
  ["greek", `Η Αθήνα είναι η πρωτεύουσα της Ελλάδας. Ο Σωκράτης δεν έγραψε ποτέ τίποτα· όλα όσα ξέρουμε γι' αυτόν τα γνωρίζουμε από τον Πλάτωνα. Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. ΑΒΓΔΕ αβγδε ς σ Σ; ΐ ΰ.`],
  ["chinese-simplified", `人工智能是计算机科学的一个分支，它企图了解智能的实质，并生产出一种新的能以人类智能相似的方式做出反应的智能机器。该领域的研究包括机器人、语言识别、图像识别、自然语言处理和专家系统等。今天天气很好，我们去公园散步吧！你吃饭了吗？“你好，”他说。`],
  ["chinese-traditional", `臺灣的夜市文化非常豐富，從士林到饒河街，處處都是美食：蚵仔煎、臭豆腐、珍珠奶茶。學習中文需要耐心與毅力。《紅樓夢》是中國古典小說的巔峰之作。`],
  ["japanese", `吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。東京スカイツリーは高さ634メートルです。ｶﾀｶﾅ（半角）とカタカナ（全角）、「かぎかっこ」、『二重かぎ』、ＡＢＣ１２３。`],
  ["korean", `대한민국의 수도는 서울입니다. 오늘 날씨가 정말 좋네요! 저는 어제 친구와 함께 한강 공원에서 자전거를 탔어요. 한글은 1443년 세종대왕이 창제하였습니다. 안녕하세요? 감사합니다.`],
  ["arabic", `اللغة العربية هي أكثر اللغات السامية تحدثًا، وإحدى أكثر اللغات انتشارًا في العالم. يتحدثها أكثر من ٤٢٢ مليون نسمة. السَّلَامُ عَلَيْكُمْ وَرَحْمَةُ اللهِ وَبَرَكَاتُهُ. الكتاب على الطاولة، والقلم في الدرج؛ هل رأيته؟`],
  ["hebrew-persian", `שלום עולם! עברית נכתבת מימין לשמאל. ירושלים היא עיר עתיקה. فارسی زبان شیرینی است؛ کتاب‌ها را روی میز گذاشتم.`],
  ["hindi", `हिन्दी भारत की राजभाषा है। नमस्ते, आप कैसे हैं? मैं ठीक हूँ, धन्यवाद। भारत में कई भाषाएँ बोली जाती हैं — तमिल, तेलुगु, बंगाली, मराठी। क्षत्रिय, ज्ञान, श्रृंगार, द्विवेदी। १२३४ ५६७८९०।`],
  ["bengali-tamil-thai", `আমি বাংলায় গান গাই। தமிழ் ஒரு பழமையான மொழி. ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ สวัสดีครับ ขอบคุณมากค่ะ`],
  ["other-scripts", `Ελληνικά, Հայերեն լեզու, ქართული ენა, አማርኛ ቋንቋ, ᐃᓄᒃᑎᑐᑦ, ᚠᚢᚦᚨᚱᚲ, Tiếng Việt có nhiều dấu: ắ ằ ẳ ẵ ặ ế ề ể ễ ệ, Türkçe: ğüşıöç İı, Polski: zażółć gęślą jaźń, Čeština: příliš žluťoučký kůň úpěl ďábelské ódy.`],
];

const emoji = [
  ["emoji-basic", `I love it 😍😍😍! Great job 👍 — see you at 🕗 🍕🍺? 🎉🎉 Let's go 🚀🌕.`],
  ["emoji-modifiers", `Skin tones: 👍🏻 👍🏼 👍🏽 👍🏾 👍🏿 ✋🏽 🧑🏿‍💻. Families and couples: 👨‍👩‍👧‍👦 👩‍❤️‍👨 🧑‍🤝‍🧑 👨‍👨‍👧. Professions: 👩‍🚀👨‍🍳👩‍⚕️🧑‍🔬.`],
  ["emoji-flags-keycaps", `Flags: 🇩🇪 🇫🇷 🇯🇵 🇺🇸🇬🇧🇨🇳 🏳️‍🌈 🏴‍☠️ 🏴󠁧󠁢󠁳󠁣󠁴󠁿. Keycaps: 1️⃣ 2️⃣ #️⃣ *️⃣ 🔟. Hearts: ❤️ ❤ ♥️ 💔 ❣️ ❤️‍🔥. Text vs emoji: ☺ ☺️ ✔ ✔️ ©️ ®️ ™️.`],
  ["emoji-dense", `😀😃😄😁😆😅🤣😂🙂🙃😉😊😇🥰😍🤩😘😗☺️😚😙🥲😋😛😜🤪😝🤑🤗🤭🤫🤔🤐🤨😐😑😶😶‍🌫️😏😒🙄😬😮‍💨🤥`],
];

const numbers = [
  ["numbers-plain", `0 1 12 123 1234 12345 123456 1234567 12345678 123456789 1234567890 00000 007 3.14159265358979 2.71828 -42 +17 1e10 6.022e23 1,000,000 1.000.000 1 000 000`],
  ["numbers-mixed", `Call +1 (555) 123-4567 or +49 30 12345678. Order #A-2024-00017 shipped on 2024-03-15T14:30:00Z; tracking 1Z999AA10123456784. IPv4 192.168.0.1, IPv6 2001:0db8:85a3::8a2e:0370:7334, MAC 00:1A:2B:3C:4D:5E, 0xDEADBEEF, 0b1010_1010, v1.2.3-rc.4, 50%, 3/4, 12:45:07.`],
  ["numbers-unicode", `Arabic-Indic ٠١٢٣٤٥٦٧٨٩, Persian ۰۱۲۳۴۵۶۷۸۹, Devanagari ०१२३४५६७८९, full-width ０１２３４５６７８９, superscripts x² + y³ = z⁴, subscripts H₂O CO₂, fractions ½ ⅓ ¾ ⅞, Roman Ⅰ Ⅱ Ⅻ ⅿ, circled ① ② ⑳, Chinese 一二三 〇 两百万, Thai ๑๒๓.`],
  ["numbers-long", `π ≈ 3.14159265358979323846264338327950288419716939937510582097494459230781640628620899862803482534211706798214808651328230664709384460955058223172535940812848111745028410270193852110555964462294895493038196`],
];

const whitespace = [
  ["ws-spaces", `one  two   three    four     five      six       seven        eight`],
  ["ws-trailing", `trailing spaces   \nand more   \n   leading spaces\n\tleading tab\ntrailing tab\t\n`],
  ["ws-newlines", `paragraph one\n\n\nparagraph two after three newlines\n\n\n\n\n\nsix newlines\r\nwindows line\r\n\r\nblank windows line\rold mac\n \n \n spaced newlines`],
  ["ws-tabs", `col1\tcol2\t\tcol3\t\t\tcol4\n\t\t\tindented\n \t \t mixed \t\t  \t`],
  ["ws-unicode", `nbsp\u00a0here, thin\u2009space, ideographic\u3000space, em\u2003space, line\u2028separator, paragraph\u2029separator, vertical\u000btab, form\u000cfeed, NEL\u0085char, BOM\ufeffmid, mongolian\u180evowel, zero\u200bwidth, ZWJ\u200djoiner, ZWNJ\u200cnon, narrow\u202fnbsp, math\u205fspace, ogham\u1680mark.`],
  ["ws-only-spaces", `          `],
  ["ws-only-newlines", `\n\n\n\n`],
  ["ws-only-mixed", ` \t\n \r\n\t \u00a0 \u3000\n`],
  ["ws-space-before-newline", `end of line \nend of line  \n  \n\nx \n y\n\n z`],
];

const code = [
  ["code-python", `import re
from typing import Optional


def parse_version(text: str) -> Optional[tuple[int, int, int]]:
    """Parse 'MAJOR.MINOR.PATCH' and return a tuple, or None."""
    match = re.fullmatch(r"(\\d+)\\.(\\d+)\\.(\\d+)", text.strip())
    if not match:
        return None
    return tuple(int(g) for g in match.groups())  # type: ignore[return-value]


class Cache(dict):
    def __missing__(self, key):
        value = self[key] = f"<{key!r}>"
        return value


if __name__ == "__main__":
    print(parse_version("  1.22.333 "), Cache()["x"], {**{'a': 1}, 'b': [1, 2, 3]})
`],
  ["code-cpp", `#include <vector>
#include <string_view>

template <typename T>
constexpr T clamp(T v, T lo, T hi) noexcept { return v < lo ? lo : (hi < v ? hi : v); }

int main(int argc, char** argv) {
    std::vector<std::string_view> args(argv + 1, argv + argc);
    for (auto& a : args) {
        if (a == "--help" || a == "-h") { std::puts("usage: prog [--help]"); return 0; }
    }
    auto* p = new int[4]{1, 2, 3, 4};
    delete[] p;   // never leak
    return clamp(argc, 0, 255) >> 1 << 2 & 0xFF | 0b11 ^ ~0;
}
`],
  ["code-json", `{"model": {"type": "BPE", "dropout": null, "vocab": {"!": 0, "\\"": 1, "#": 2}}, "merges": ["Ġ t", "Ġ a", "h e"], "n": -1.5e-3, "ok": true, "list": [[], {}, [[[]]]], "unicode": "\\u00e9\\ud83d\\ude00", "path": "C:\\\\Users\\\\me"}`],
  ["code-shell", `#!/usr/bin/env bash
set -euo pipefail
for f in "\${@:-*.txt}"; do
  n=$(wc -l < "$f") && echo "$f: $n lines" >&2
  [[ -s $f ]] || { echo "empty: $f"; continue; }
  grep -E '^[A-Z]{2,}[[:space:]]+' "$f" | sort -u | head -n 20 > "\${f%.txt}.out" 2>/dev/null
done
export PATH="$HOME/.local/bin:$PATH"; cd ~ && ls -la | awk '{print $9}'
`],
  ["code-web-sql", `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Test &amp; demo</title></head>
<body><div class="a b" id='x' data-n=3>Hello&nbsp;world &lt;3</div>
<script>const f = (a, b = {}) => a?.b ?? [...b].map(x => x ** 2); console.log(\`v=\${f(1)}\`);</script></body></html>
SELECT u.id, COUNT(*) AS n FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE u.created_at >= '2024-01-01' GROUP BY u.id HAVING n > 5 ORDER BY n DESC LIMIT 10;`],
  ["code-rust-go", `fn main() -> Result<(), Box<dyn std::error::Error>> {
    let v: Vec<u8> = "héllo".bytes().collect();
    println!("{:?} {}", v, v.len());
    Ok(())
}
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\\n")) }`],
  ["code-markdown", `# Title

| name | value |
|------|------:|
| \`a\` | **1** |
| _b_  | ~~2~~ |

> quote with [link](https://example.com/path?q=1&r=two#frag) and ![img](a.png "t")

\`\`\`python
print("fenced")
\`\`\`
---`],
];

const contractions = [
  ["contractions-lower", `it's isn't I'm you're we've they'll she'd he's that'll who'd've y'all'd've o'clock rock'n'roll`],
  ["contractions-upper", `IT'S ISN'T I'M YOU'RE WE'VE THEY'LL SHE'D HE'S THAT'LL WHO'D'VE Y'ALL'D'VE`],
  ["contractions-mixed-case", `It'S it'S iT's You'Re you'rE WE'Ve we'vE They'Ll they'lL She'D I'M i'm`],
  ["contractions-edge", `'s 'S 't 'T 're 'RE 'Re 'rE 've 'VE 'm 'M 'll 'LL 'Ll 'lL 'd 'D ''s '''t 's's 'sss 'res 'lll 'x 'ſ ' s 'é 'ß 's1 '1 ' '`],
  ["contractions-typographic", `It’s don’t we’ll ‘quoted’ “double” ʼs ′s don\`t`],
];

const special = [
  ["special-chat", `<|begin_of_text|><|start_header_id|>system<|end_header_id|>

You are a helpful assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>

What's 2 + 2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>

4<|eot_id|><|end_of_text|>`],
  ["special-embedded", `Text before<|end_of_text|>text after. A sentence with <|eot_id|> in the middle, and one ending with <|eot_id|>. Spaces around: <|begin_of_text|> x <|end_of_text|> y`],
  ["special-adjacent", `<|eot_id|><|eot_id|><|eot_id|>a<|eot_id|> <|eot_id|>\n<|eot_id|>\t<|reserved_special_token_0|><|reserved_special_token_250|><|python_tag|><|finetune_right_pad_id|><|eom_id|>`],
  ["special-malformed", `<|eot_id| <|eot_id <eot_id|> <|EOT_ID|> < |eot_id|> <|eot_id|>> <<|eot_id|> <|<|eot_id|>|> <|begin_of_text <|end_of_text|x <|reserved_special_token_999|> <|endoftext|> <|im_start|> <s></s> [INST]`],
];

const edge = [
  ["edge-empty", ``],
  ["edge-single-space", ` `],
  ["edge-single-letter", `a`],
  ["edge-single-newline", `\n`],
  ["edge-punctuation", `!!! ??? ... ,,, ;;; ::: --- ___ === +++ *** /// \\\\\\ ||| &&& %%% $$$ ### @@@ ^^^ ~~~ \`\`\` ''' """ ((( ))) [[[ ]]] {{{ }}} <<< >>> ¡¿ «» ‹› „“ ‚‘ †‡ •… ‰ ′″ ← → ↑ ↓ ∀∃∈∉∑∏√∞≈≠≤≥ ⊂⊃∩∪ ℕℤℚℝℂ`],
  ["edge-long-word", `${"a".repeat(300)} ${"Supercalifragilisticexpialidocious".repeat(8)} ${"ab".repeat(150)}`],
  ["edge-long-runs", `${"=".repeat(120)}\n${"-".repeat(80)}\n${"#".repeat(64)} ${"!".repeat(33)}${".".repeat(50)}`],
  ["edge-url-base64", `https://www.example.org/very/long/path/segment_with_underscores/and-dashes/index.html?utm_source=newsletter&utm_medium=email&id=1234567890#section-42 data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg== user.name+tag@sub.example.co.uk`],
  ["edge-combining", `e\u0301 cafe\u0301 café n\u0303 ñ a\u030a\u0301 \u0301start Z\u0351\u0358\u0360a\u035c\u0353l\u0359\u035eg\u0347o\u0356 Ǆ ǅ ǆ ﬁ ﬂ ﬀ Å Å Ω Ω`],
  ["edge-controls", `bell\u0007 null\u0000 esc\u001b[31mred\u001b[0m del\u007f c1\u0090 soft\u00adhyphen word\u2060joiner`],
  ["edge-astral", `𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐁𝐨𝐥𝐝 𝟙𝟚𝟛 𠜎𠜱𠝹𠱓 𝄞𝄢 𓀀𓁐 𐍈𐌰𐌽𐍃 🀄🃏 \ue000 private \uffff\ufffd replacement`],
  ["edge-mixed-scripts", `naïve café résumé Zürich São Paulo Ελλάδα Россия 中国 日本語 한국어 العربية עברית हिन्दी — iPhone15Pro, COVID-19, H2O, 4K60fps, x86_64, α-β, Δt=0.5s`],
  ["edge-letters-digits", `abc123def4567ghi89012 ABC１２３ 3rd 21st 1990s 10x 2x2 3D v2 A4 B52 mp3 h264 utf8`],
  ["edge-punct-letters", `!hello ?world .com ,and "quoted" 'single' (paren) [bracket] {brace} <angle> @user #tag $var %mod ^caret &amp *star _under -dash +plus =eq |pipe \\back /slash ~tilde`],
  ["edge-newline-punct", `.\n,\n!\n?\n.\n\n;\r\n:\r\n\r\n)\n\n\n(\n`],
];

export const handWritten = [...english, ...languages, ...emoji, ...numbers, ...whitespace, ...code,
  ...contractions, ...special, ...edge];
