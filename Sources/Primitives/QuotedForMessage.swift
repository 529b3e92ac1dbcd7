/// Quotes untrusted input (a volume id, an export name) for an error message: control
/// characters are escaped and long input is cut, so the message stays one readable line
/// in logs and in `volume_operations.error`.
package func quotedForMessage(_ text: String) -> String {
    let limited = text.count > 80 ? String(text.prefix(80)) + "…" : text
    return "\"" + limited.unicodeScalars.map { $0.escaped(asASCII: true) }.joined() + "\""
}
