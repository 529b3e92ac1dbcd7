/// Splits a migration file into single statements.
///
/// PostgresNIO speaks PostgreSQL's extended protocol, which takes one statement per query,
/// so a file is split at top-level semicolons: those outside quotes ('…', "…"),
/// dollar-quoted bodies ($$…$$, $tag$…$tag$) and comments (-- …, /* … */, nested).
public enum SQLStatementSplitter {
    public static func split(_ sql: String) -> [String] {
        let characters = Array(sql.unicodeScalars)
        var statements: [String] = []
        var current = String.UnicodeScalarView()
        var index = 0

        func peek(_ offset: Int) -> Unicode.Scalar? {
            index + offset < characters.count ? characters[index + offset] : nil
        }
        func flush() {
            let text = String(current).trimmingWhitespace()
            if !text.isEmpty && !isOnlyComments(text) { statements.append(text) }
            current = String.UnicodeScalarView()
        }

        while index < characters.count {
            let character = characters[index]
            switch character {
            case "'", "\"":
                // Quoted text; a doubled quote is an escaped quote and stays inside.
                current.append(character)
                index += 1
                while index < characters.count {
                    current.append(characters[index])
                    if characters[index] == character {
                        if peek(1) == character { index += 1; current.append(characters[index]) } else { break }
                    }
                    index += 1
                }
                index += 1
            case "-" where peek(1) == "-":
                while index < characters.count && characters[index] != "\n" {
                    current.append(characters[index]); index += 1
                }
            case "/" where peek(1) == "*":
                var depth = 0
                repeat {
                    if characters[index] == "/" && peek(1) == "*" {
                        depth += 1; current.append("/"); current.append("*"); index += 2
                    } else if characters[index] == "*" && peek(1) == "/" {
                        depth -= 1; current.append("*"); current.append("/"); index += 2
                    } else {
                        current.append(characters[index]); index += 1
                    }
                } while depth > 0 && index < characters.count
            case "$":
                // A dollar-quote tag is $$ or $identifier$; otherwise it is a parameter like $1.
                var end = index + 1
                while end < characters.count, characters[end] == "_" || characters[end].properties.isAlphabetic
                    || (end > index + 1 && ("0"..."9").contains(characters[end])) {
                    end += 1
                }
                if end < characters.count && characters[end] == "$" {
                    let tag = Array(characters[index...end])
                    current.append(contentsOf: tag)
                    index = end + 1
                    while index < characters.count {
                        if characters[index] == "$" && index + tag.count <= characters.count
                            && Array(characters[index..<(index + tag.count)]) == tag {
                            current.append(contentsOf: tag)
                            index += tag.count
                            break
                        }
                        current.append(characters[index]); index += 1
                    }
                } else {
                    current.append(character); index += 1
                }
            case ";":
                flush()
                index += 1
            default:
                current.append(character)
                index += 1
            }
        }
        flush()
        return statements
    }

    private static func isOnlyComments(_ text: String) -> Bool {
        text.split(separator: "\n").allSatisfy {
            let line = $0.trimmingWhitespace()
            return line.isEmpty || line.hasPrefix("--")
        }
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        let scalars = String(self).unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(String.UnicodeScalarView(scalars[first...last]))
    }
}
