package autobahn

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// The payloads of 12.x and 13.x. Autobahn cuts its messages from five files
// of its testdata directory; they are not ours to ship (a report page and
// index of its own, a Project Gutenberg text, the Lena picture, a
// third-party PDF), so each is replaced by a synthetic stand-in of the same
// kind, size and message type, generated from a fixed seed:
//
//	12.1, 13.x  JSON report index, ASCII, text, 194056 bytes (data1.json)
//	12.2        8-bit grayscale BMP 512x512, binary, 263222 bytes (lena512.bmp)
//	12.3        German verse, UTF-8, sent as binary, 222218 bytes (pg2229.txt)
//	12.4        HTML report page, ASCII, text, 263527 bytes (data1.html)
//	12.5        PDF with deflated streams, binary, 1042328 bytes (10.1.1.105.5439.pdf)
//
// The text corpora are ASCII, so that any slice of them is valid UTF-8, as
// Autobahn's are.

// corpus is one payload source, generated on first use.
type corpus struct {
	kind   string // what the stand-in is
	orig   string // Autobahn's description of the file it stands in for
	size   int
	binary bool
	gen    func(n int) []byte

	once sync.Once
	data []byte
}

func (c *corpus) bytes() []byte {
	c.once.Do(func() {
		c.data = c.gen(c.size)
		if len(c.data) != c.size {
			panic(fmt.Sprintf("autobahn: corpus %q generated %d bytes, want %d", c.kind, len(c.data), c.size))
		}
	})
	return c.data
}

// title names the corpus in case descriptions.
func (c *corpus) title() string {
	t := "utf8"
	if c.binary {
		t = "binary"
	}
	return fmt.Sprintf("%s (%s, %d bytes), a synthetic stand-in for Autobahn's %s", c.kind, t, c.size, c.orig)
}

var (
	corpusJSON = &corpus{kind: "JSON report index", orig: "Large JSON data file", size: 194056, gen: genJSON}
	corpusBMP  = &corpus{kind: "grayscale bitmap 512x512", orig: "Lena Picture, Bitmap 512x512 bw", size: 263222, binary: true, gen: genBMP}
	corpusText = &corpus{kind: "German verse", orig: "Human readable text, Goethe's Faust I (German)", size: 222218, binary: true, gen: genVerse}
	corpusHTML = &corpus{kind: "HTML report page", orig: "Large HTML file", size: 263527, gen: genHTML}
	corpusPDF  = &corpus{kind: "PDF document", orig: "A larger PDF", size: 1042328, binary: true, gen: genPDF}

	// corpora12 are the payloads of 12.1 to 12.5, in Autobahn's order.
	corpora12 = []*corpus{corpusJSON, corpusBMP, corpusText, corpusHTML, corpusPDF}
)

func seeded(n uint64) *rand.Rand { return rand.New(rand.NewPCG(n, 0x77736b6974)) }

// skewed picks an index below n, small ones far more often (about as words
// and tags are used).
func skewed(r *rand.Rand, n int) int {
	return min(int(float64(n)*math.Pow(r.Float64(), 2.5)), n-1)
}

// genJSON writes a test report index: agents, case IDs and outcomes.
func genJSON(n int) []byte {
	r := seeded(1)
	agents := []string{"wskit/0.1.0", "EchoServer/2.4.1", "Browser/118.0.5993.70", "PyWS/0.9.2", "NodeWS/8.23.0", "RustWS/0.26.2", "JavaWS/1.5.7"}
	outcomes := []string{"OK", "OK", "OK", "OK", "OK", "OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"}
	closeCodes := []string{"1000", "1000", "1000", "1002", "1007", "1001", "null"}
	var b bytes.Buffer
	b.WriteString("{\n")
	for a := 0; b.Len() < n; a++ {
		agent := agents[a%len(agents)]
		if a >= len(agents) {
			agent += fmt.Sprintf("-r%d", a/len(agents))
		}
		fmt.Fprintf(&b, "   %q: {\n", agent)
		file := strings.NewReplacer("/", "_", ".", "_", "-", "_").Replace(strings.ToLower(agent))
		first := true
		for sec := 1; sec <= 13 && b.Len() < n; sec++ {
			subs := 1 + r.IntN(8)
			for sub := 1; sub <= subs; sub++ {
				cases := 1 + r.IntN(18)
				for c := 1; c <= cases; c++ {
					if !first {
						b.WriteString(",\n")
					}
					first = false
					id := fmt.Sprintf("%d.%d.%d", sec, sub, c)
					fmt.Fprintf(&b, "      %q: {\n", id)
					fmt.Fprintf(&b, "         \"behavior\": %q,\n", outcomes[skewed(r, len(outcomes))])
					fmt.Fprintf(&b, "         \"behaviorClose\": %q,\n", outcomes[skewed(r, len(outcomes))])
					fmt.Fprintf(&b, "         \"duration\": %d,\n", 1+skewed(r, 2000))
					fmt.Fprintf(&b, "         \"remoteCloseCode\": %s,\n", closeCodes[r.IntN(len(closeCodes))])
					fmt.Fprintf(&b, "         \"reportfile\": \"%s_case_%d_%d_%d.json\"\n", file, sec, sub, c)
					b.WriteString("      }")
				}
			}
		}
		b.WriteString("\n   },\n")
	}
	return b.Bytes()[:n]
}

// genHTML writes a report page: a style sheet, a script, and a table of
// agents' results with links.
func genHTML(n int) []byte {
	r := seeded(2)
	var b bytes.Buffer
	b.WriteString("<!DOCTYPE html>\n<html>\n  <head>\n    <meta charset=\"utf-8\">\n    <title>WebSocket conformance report</title>\n    <style>\n")
	selectors := []string{"body", "table.results", "td.pass", "td.fail", "td.info", "td.missing", "th.agent", "tr.section", "tr.subsection", "a.case", "span.duration", "div.summary", "p.note", "pre.wire"}
	props := []string{"color", "background-color", "margin", "padding", "border", "font-size", "font-family", "text-align", "border-radius", "width"}
	values := map[string][]string{
		"color":            {"#333", "#fff", "#444", "#048", "#900"},
		"background-color": {"#0a0", "#900", "#4095bf", "#a05a2c", "#e0e0e0", "#f4f4f4"},
		"margin":           {"0", "4px 20px", "20px", "0 auto"},
		"padding":          {"4px", "6px 16px", "16px", "2px 10px"},
		"border":           {"1px solid #fff", "1px solid #aaa", "none"},
		"font-size":        {"0.7em", "0.8em", "0.9em", "1.0em", "1.1em"},
		"font-family":      {"Segoe UI, Tahoma, Arial, sans-serif", "Consolas, \"Courier New\", monospace", "Cambria, serif"},
		"text-align":       {"left", "center", "right"},
		"border-radius":    {"10px", "12px", "16px"},
		"width":            {"100%", "140px", "15px"},
	}
	for _, sel := range selectors {
		fmt.Fprintf(&b, "%s {\n", sel)
		for range 2 + r.IntN(5) {
			p := props[r.IntN(len(props))]
			fmt.Fprintf(&b, "   %s: %s;\n", p, values[p][r.IntN(len(values[p]))])
		}
		b.WriteString("}\n\n")
	}
	b.WriteString("    </style>\n    <script>\nfunction toggle(cls, shown) {\n   var els = document.getElementsByClassName(cls);\n" +
		"   for (var i = 0; i < els.length; i++) {\n      els[i].style.display = shown ? \"table-cell\" : \"none\";\n   }\n}\n    </script>\n" +
		"  </head>\n  <body>\n    <div class=\"summary\"><p class=\"note\">Generated by the wskit Autobahn harness as compressible test data.</p></div>\n" +
		"    <table class=\"results\">\n")
	agents := []string{"wskit_0_1_0", "echoserver_2_4_1", "browser_118_0", "pyws_0_9_2"}
	cls := []string{"pass", "pass", "pass", "pass", "pass", "info", "fail", "missing"}
	for sec := 1; b.Len() < n; sec++ {
		fmt.Fprintf(&b, "      <tr class=\"section\"><th colspan=\"%d\">%d Section</th>", 1+2*len(agents), sec)
		for _, a := range agents {
			fmt.Fprintf(&b, "<th class=\"agent\" colspan=\"2\">%s</th>", a)
		}
		b.WriteString("</tr>\n")
		subs := 1 + r.IntN(9)
		for sub := 1; sub <= subs && b.Len() < n; sub++ {
			fmt.Fprintf(&b, "      <tr class=\"subsection\"><td colspan=\"%d\">%d.%d Subsection</td></tr>\n", 1+2*len(agents), sec, sub)
			cases := 1 + r.IntN(24)
			for c := 1; c <= cases; c++ {
				fmt.Fprintf(&b, "      <tr>\n        <td><a class=\"case\" href=\"#case_%d_%d_%d\">Case %d.%d.%d</a></td>\n", sec, sub, c, sec, sub, c)
				for _, a := range agents {
					k := cls[skewed(r, len(cls))]
					fmt.Fprintf(&b, "        <td class=\"%s\"><a href=\"%s_case_%d_%d_%d.html\">%s</a><span class=\"duration\">%d ms</span></td>"+
						"<td class=\"%s close\"><span class=\"code\">%d</span></td>\n",
						k, a, sec, sub, c, strings.ToUpper(k[:1])+k[1:], 1+skewed(r, 1500), k, []int{1000, 1000, 1002, 1007}[r.IntN(4)])
				}
				b.WriteString("      </tr>\n")
			}
		}
	}
	return b.Bytes()[:n]
}

// genVerse writes German dramatic verse: speakers, stage directions and
// lines of words drawn with a skewed frequency, in UTF-8.
func genVerse(n int) []byte {
	r := seeded(3)
	speakers := []string{"FAUST", "MEPHISTOPHELES", "WAGNER", "MARGARETE", "MARTHE", "DER SCHÜLER", "CHOR DER ENGEL", "DER HERR", "HEXE", "VALENTIN"}
	words := strings.Fields(`und die der ich nicht das zu ist du es mich so mir mit ein sich auf den
		wie dem wohl mein nur was noch im doch auch wenn an sie kann da er hat sein wird soll hier nun schon
		Herz Welt Geist Nacht Gott Himmel Erde Seele Leben Liebe Tag Zeit Licht Kraft Natur Blut Traum Freude
		Schmerz Gretchen Wissen Gelehrte Teufel Wesen Brust Augen Hand Mund Sinn Worte Lied Stern Schatten
		Glück Mädchen Garten Kirche Straße Kammer Abend Morgen Frühling Feuer Wasser Quelle Ewigkeit Qual
		schön groß süß hoch tief dunkel hell müde froh still wild heiß bitter selig ewig fremd lieb
		möcht' hätt' wär' gehn stehn sehn kömmt würd' müßt' läßt weiß fühl' träum' schwör' führ' spür'
		Übermut Ärger Öde Äther Mühe Tränen Bürger Glöckchen Gefühl Gemüt Lüfte Flüsse Götter Wünsche
		ach o weh ja nein fort hinweg empor herab hinaus zurück wieder immer nimmer einmal gewiß`)
	directions := []string{"(Er geht ab.)", "(Sie setzt sich.)", "(Verschwindet.)", "(Beiseite.)", "(Es donnert.)",
		"(Er schlägt das Buch auf.)", "(Glocken und Chorgesang.)", "(Nacht. Ein hochgewölbtes, enges Zimmer.)"}
	var b bytes.Buffer
	b.WriteString("Deutsche Verse, nach der Art einer Tragödie in Szenen.\r\nSynthetischer Text für die Kompressionstests des wskit-Autobahn-Prüfstands.\r\n\r\n")
	for scene := 1; b.Len() < n; scene++ {
		fmt.Fprintf(&b, "\r\n\r\n%d. SZENE\r\n\r\n%s\r\n\r\n", scene, directions[r.IntN(len(directions))])
		for range 4 + r.IntN(10) {
			fmt.Fprintf(&b, "%s:\r\n", speakers[skewed(r, len(speakers))])
			for range 1 + r.IntN(9) {
				line := make([]string, 4+r.IntN(6))
				for i := range line {
					line[i] = words[skewed(r, len(words))]
				}
				s := strings.Join(line, " ")
				first, size := utf8.DecodeRuneInString(s)
				s = string(unicode.ToUpper(first)) + s[size:]
				b.WriteString("  " + s + []string{",", ".", "!", "?", ";", ",", ""}[r.IntN(7)] + "\r\n")
			}
			if r.IntN(6) == 0 {
				b.WriteString(directions[r.IntN(len(directions))] + "\r\n")
			}
			b.WriteString("\r\n")
		}
	}
	return b.Bytes()[:n]
}

// genBMP draws a smooth, slightly noisy 512x512 grayscale picture in an
// 8-bit BMP with a gray palette: 14 + 40 + 1024 + 262144 bytes.
func genBMP(n int) []byte {
	const w, h, off = 512, 512, 14 + 40 + 256*4
	r := seeded(4)
	b := make([]byte, 0, off+w*h)
	le32 := func(v uint32) { b = binary.LittleEndian.AppendUint32(b, v) }
	le16 := func(v uint16) { b = binary.LittleEndian.AppendUint16(b, v) }
	b = append(b, 'B', 'M')
	le32(off + w*h)
	le32(0)
	le32(off)
	le32(40)
	le32(w)
	le32(h)
	le16(1)
	le16(8)
	le32(0)
	le32(w * h)
	le32(2835)
	le32(2835)
	le32(256)
	le32(256)
	for i := range 256 {
		b = append(b, byte(i), byte(i), byte(i), 0)
	}
	for y := range h {
		for x := range w {
			fx, fy := float64(x), float64(y)
			v := 118 + 52*math.Sin(fx/41+math.Sin(fy/57)*1.7) + 34*math.Cos(fy/29-fx/83) +
				40*math.Exp(-((fx-300)*(fx-300)+(fy-220)*(fy-220))/9000) - 45*math.Exp(-((fx-140)*(fx-140)+(fy-380)*(fy-380))/5000) +
				r.NormFloat64()*5
			b = append(b, byte(max(0, min(255, v))))
		}
	}
	return b[:n]
}

// genPDF writes PDF objects, most of them zlib-compressed content and image
// streams, as a document of many pages holds.
func genPDF(n int) []byte {
	r := seeded(5)
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	words := strings.Fields("the of and to in a is that for on with as by are this be at from it an which or we protocol message frame server client data compression window latency throughput")
	var zb bytes.Buffer
	deflate := func(p []byte) []byte {
		zb.Reset()
		zw := zlib.NewWriter(&zb)
		zw.Write(p)
		zw.Close()
		return zb.Bytes()
	}
	for obj := 1; b.Len() < n; obj++ {
		switch obj % 5 {
		case 0, 1: // a page's text content
			var c bytes.Buffer
			fmt.Fprintf(&c, "BT\n/F%d %d Tf\n", 1+r.IntN(4), 8+r.IntN(6))
			for y := 760; y > 60; y -= 12 + r.IntN(3) {
				line := make([]string, 6+r.IntN(8))
				for i := range line {
					line[i] = words[skewed(r, len(words))]
				}
				fmt.Fprintf(&c, "72 %d Td (%s) Tj\n", y, strings.Join(line, " "))
			}
			c.WriteString("ET\n")
			z := deflate(c.Bytes())
			fmt.Fprintf(&b, "%d 0 obj\n<< /Length %d /Filter /FlateDecode >>\nstream\n", obj, len(z))
			b.Write(z)
			b.WriteString("\nendstream\nendobj\n")
		case 2: // an image
			iw, ih := 64+r.IntN(192), 64+r.IntN(192)
			px := make([]byte, iw*ih)
			for i := range px {
				px[i] = byte(128 + 60*math.Sin(float64(i%iw)/float64(7+obj%11)) + r.NormFloat64()*20)
			}
			z := deflate(px)
			fmt.Fprintf(&b, "%d 0 obj\n<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 /Length %d /Filter /FlateDecode >>\nstream\n", obj, iw, ih, len(z))
			b.Write(z)
			b.WriteString("\nendstream\nendobj\n")
		case 3: // a page
			fmt.Fprintf(&b, "%d 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R /Resources << /Font << /F1 7 0 R /F2 8 0 R >> /XObject << /Im%d %d 0 R >> >> >>\nendobj\n", obj, obj-2, obj, obj-1)
		case 4: // a font descriptor
			fmt.Fprintf(&b, "%d 0 obj\n<< /Type /FontDescriptor /FontName /Serif%d /Flags 34 /FontBBox [-%d -%d %d %d] /ItalicAngle 0 /Ascent %d /Descent -%d /CapHeight %d /StemV %d >>\nendobj\n",
				obj, obj%7, r.IntN(200), r.IntN(300), 900+r.IntN(200), 800+r.IntN(200), 650+r.IntN(100), 150+r.IntN(100), 600+r.IntN(100), 60+r.IntN(40))
		}
	}
	return b.Bytes()[:n]
}
