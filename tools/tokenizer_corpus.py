"""The texts the tokenizer fixtures encode, and the text the small tokenizers are trained on.

Used by tools/make_tokenizer_fixtures.py (which says how to run it). Everything here is
written out in this file, so the fixtures do not depend on anything else on the machine.
"""
import random

CORPUS = [
    # empty and one-character texts
    "",
    " ",
    "a",
    "Z",
    "7",
    "\n",
    "\t",
    ".",
    "'",
    "é",
    "\u0301",            # a lone combining acute accent
    "中",
    "🙂",
    "\u00a0",            # NO-BREAK SPACE alone
    "\u3000",            # IDEOGRAPHIC SPACE alone
    "▁",                 # the SentencePiece space marker itself
    "Ġ",                 # the byte-level space stand-in itself
    # Latin, plain and accented (precomposed and combining)
    "Hello world",
    "Hello, world! How are you today?",
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG.",
    "café naïve résumé façade jalapeño Ångström",
    "cafe\u0301 nai\u0308ve re\u0301sume\u0301 A\u030angstro\u0308m",
    "Ça va? Où est la gare? Élodie a dit « bonjour ».",
    "Straße, Größe, Übermaß, ÄÖÜ äöü ß ẞ",
    "Zażółć gęślą jaźń. Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "ﬁnance ﬂow — “quoted” ‘single’ … ‹›",
    "İstanbul ıi İI",
    # other scripts
    "Καλημέρα κόσμε! Ελληνικά: αβγδε ΑΒΓΔΕ ς σ Σ.",
    "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "你好，世界！我们今天去公园散步。",
    "中华人民共和国成立于1949年10月1日。",
    "こんにちは、世界。カタカナとひらがな、漢字も。",
    "ｶﾀｶﾅ ﾊﾝｶｸ ｱｲｳｴｵ",
    "안녕하세요 세계! 한국어 문장입니다.",
    "ᄒᆞᆫ글 자모 ᄀ ᅡ ᆨ",
    "مرحبا بالعالم! هذه جملة عربية.",
    "שלום עולם! זה משפט בעברית.",
    "नमस्ते दुनिया! यह हिंदी में एक वाक्य है।",
    "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "Ողջույն աշխարհ · გამარჯობა მსოფლიო · ሰላም ልዑል",
    "Mixed: English, Русский, 中文, العربية, हिन्दी, ไทย in one line.",
    # code
    "int main(void) {\n    printf(\"hello, %s\\n\", \"world\");\n    return 0;\n}\n",
    "#include <stdio.h>\n#define MAX(a, b) ((a) > (b) ? (a) : (b))\nstatic int x[16] = {0};\n",
    "for (size_t i = 0; i < n; i++) {\n\tsum += a[i] * b[i];\n}\n",
    "def f(x):\n    if x > 0:\n        return x ** 2\n    else:\n        return -x\n",
    "class Foo:\n\tdef __init__(self):\n\t\tself.x = 1  # tab-indented\n\n\n\tdef bar(self): pass\n",
    "import numpy as np\nprint(np.arange(10).reshape(2, 5))\n",
    "x=[1,2,3];y={'a':1,\"b\":2}\n",
    "if (a&&b||!c) { p->q[i] <<= 2; } // comment\n/* block */\n",
    "<html><body><div class=\"x\">text</div></body></html>",
    "{\"key\": \"value\", \"list\": [1, 2.5, -3e10, true, null]}",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "$ ls -la /usr/local/bin && echo \"done\" | tee log.txt",
    "https://example.com/path?q=1&lang=en#frag user@example.org",
    # digits and numbers
    "0",
    "42",
    "123",
    "1234",
    "12345678901234567890",
    "3.14159265358979323846",
    "1,234,567.89 and 1.234.567,89",
    "Call 555-0123 or +1 (800) 555-0199 before 2024-12-31T23:59:59Z.",
    "Version 2.0.1, build 20240101, id 0x7fffffff, 1e-9",
    "The years 1999, 2000 and 2001; numbers 7 77 777 7777 77777.",
    "Arabic-Indic digits: ٠١٢٣٤٥٦٧٨٩ and ١٢٣٤٥",
    "Devanagari digits ०१२३४५६७८९, fullwidth ０１２３４５６７８９",
    "Roman Ⅻ, circled ①②③, superscript x² y³, fractions ½ ¾",
    "abc123def 456ghi 7a8b9c",
    # emoji
    "I love 🍕 and 🍺!",
    "😀😃😄😁😆",
    "👨‍👩‍👧‍👦 family",
    "👩‍💻 codes, 🧑‍🚀 flies, 🏳️‍🌈 waves, 🏴‍☠️ sails",
    "👍👍🏻👍🏼👍🏽👍🏾👍🏿",
    "🇺🇸🇬🇧🇯🇵🇩🇪 flags",
    "❤️ vs ❤ vs ❤︎, ☺️ ✌️ ☝🏽",
    "keycaps 1️⃣ 2️⃣ #️⃣",
    "emoji🙂glued🙃to🤔words",
    # whitespace runs
    "a  b   c    d",
    "tab\tseparated\tvalues\t\t\tend",
    "windows\r\nline\r\nendings\r\n",
    "para one\n\n\npara two\n\n",
    "   leading spaces",
    "trailing spaces   ",
    "  both  ",
    "\n\nleading newlines",
    "trailing newline\n",
    " \t \n \r\n  mixed whitespace",
    "no\u00a0break\u00a0space and ideographic\u3000space",
    "thin\u2009space, em\u2003space, zero\u200bwidth",
    "line\u2028separator and paragraph\u2029separator",
    "form\x0cfeed and vertical\x0btab",
    "   \n   ",
    "          ",
    # contractions
    "I'll go, you'll see, he's here, she'd know, we've been, they're gone, I'm fine.",
    "I'LL GO, YOU'LL SEE, HE'S HERE, SHE'D KNOW, WE'VE BEEN, THEY'RE GONE, I'M FINE.",
    "don't DON'T Don't can't won't isn't",
    "It's John's book; the dogs' bowls; rock 'n' roll; '90s",
    "He said 'hello' and 'goodbye'.",
    "l'homme, aujourd'hui, dell'arte",
    "we ’ll use a curly apostrophe: I’ll, don’t",
    # punctuation runs
    "Wait...\nWhat?!\n",
    "!!!\n???\n...\n",
    "---\n===\n***\n",
    "Hmm.\r\nOK!\r\n",
    "(parenthetical), [bracketed]; {braced}: <angled>",
    "a--b__c..d,,e::f;;g",
    "@#$%^&*()_+-=[]{}|;:'\",.<>/?`~",
    "end.\n",
    "«¿¡Qué?!»",
    # special-token strings inside text (each tokenizer knows some of them)
    "<|endoftext|>",
    "Hello<|endoftext|>world",
    "Hello <|endoftext|> world",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n",
    "<|im_start|> user <|im_end|>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
    "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|end_of_text|>",
    "<s>",
    "<s>[INST] Hi [/INST] Hello</s>",
    " </s> ",
    "text</s>more",
    "x <s> y",
    "<unk>",
    "<s><s></s></s>",
    "<|im_end|><|im_end|>",
    "<|im_start|<|im_end|>|>",
    "<|notaspecialtoken|>",
    # added tokens of the fixtures: <mask> lstrip, <sep> rstrip, xyzzy single_word, <tool> and
    # <tool_call> not special, café and my_token normalized (tools/make_tokenizer_fixtures.py)
    "fill the <mask> here",
    "fill the<mask>here",
    "a   <mask>   b",
    "first<sep> second <sep>  third",
    "call <tool>run</tool> now",
    "xyzzy",
    "say xyzzy now",
    "sayxyzzynow",
    "xyzzy, xyzzy.",
    "café au lait",
    "cafe\u0301 au lait",
    "my_token and my_tokens",
    "MY_TOKEN",
    # long mixed paragraph
    "In 2023, researchers at the Université de Montréal (UdeM) published 3 papers — "
    "“Learning to Tokenize” among them — showing a 12.5% gain. 研究人员说：“这很重要。” "
    "Они сказали: «Это важно!» 🎉🎉 The code was `tokenize(text, max_len=1024)`;\n"
    "\tresults:\n\t\t- BLEU 34.7\n\t\t- chrF 61.2\r\n"
    "Don't forget: it's 10:30am on 2023-05-17. मुझे यह पसंद है। ไทย 👩🏽‍🔬 done.  ",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud "
    "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.",
    # odd characters
    "control\x01chars\x7f here",
    "soft\u00adhyphen and zero\u200dwidth\u200cjoiners",
    "variation selectors: 葛\U000e0100 ︎",
    "right-to-left mark \u200f and left-to-right \u200e",
    "BOM\ufeff inside",
    "replacement char \ufffd and private use \ue000",
    "astral: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟘𝟙𝟚 𠀀𠀁",
    "math: ∀x∈ℝ, ∃y: x²+y²≤1 ⇒ √(x²) ≠ ∞",
    "box ─│┌┐└┘ and blocks █▓▒░",
]

# Syllables of several scripts; seeded random words from them give the training text merges
# in every script (not only English), so BPE ranks and byte fallback both get exercised.
_SYLLABLES = {
    "latin": "ka ri to ne ma su le an in on er es the ing ion re de la que ch sh st".split(),
    "accented": "é è ê à ç ô ü ö ä ñ ß ée ès où çà".split(),
    "greek": "κα λη μέ ρα κό σμε το να ει αι ου ος".split(),
    "cyrillic": "при вет мир ско ро на ет ов ия ст ние".split(),
    "cjk": list("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年"),
    "kana": "こん にち は せか い カタ カナ ひら がな です ます".split(),
    "korean": "안녕 하세 요 세계 한국 어 문장 입니 다".split(),
    "arabic": "مر حبا بال عا لم هذه جم لة".split(),
    "hebrew": "של ום עו לם זה מש פט".split(),
    "devanagari": "नम स्ते दु निया यह हिं दी में".split(),
    "thai": "สวั สดี ชาว โลก ภา ษา ไทย".split(),
}

_PROSE = (
    "It is a truth universally acknowledged, that a single model in possession of good data "
    "must be in want of a tokenizer. The tokenizer splits text into pieces; the pieces are "
    "merged by pairs, and each merge has a rank. Don't worry: it's simple, isn't it? "
    "We'll see. They've tried, and they're sure. I'm told you'd agree.\n"
)

_CODE = (
    "static int add(int a, int b) {\n    return a + b;\n}\n\n"
    "def add(a, b):\n    return a + b\n\n"
    "for i in range(10):\n\tprint(i, i * i)\n"
    "if (x == NULL) { return -1; }\n"
)


def training_text():
    """A few tens of KB: the corpus, English prose, code and seeded words of many scripts."""
    rng = random.Random(12)
    parts = ["\n".join(CORPUS), _PROSE * 8, _CODE * 8]
    for _ in range(60):
        for name, syll in _SYLLABLES.items():
            words = ["".join(rng.choice(syll) for _ in range(rng.randint(1, 3)))
                     for _ in range(rng.randint(3, 9))]
            sep = "" if name in ("cjk", "kana", "thai") and rng.random() < 0.5 else " "
            parts.append(sep.join(words) + rng.choice([".", ",", "!", "?", "。", ""]) + "\n")
        parts.append(" ".join(str(rng.randint(0, 10 ** rng.randint(1, 8))) for _ in range(5)) + "\n")
        parts.append(rng.choice(["🙂 ", "👍🏽 ", "🇫🇷 ", "👨‍👩‍👧 ", "❤️ ", "\t", "  ", "\r\n"]))
    return "".join(parts)
