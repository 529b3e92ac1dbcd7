#if canImport(Glibc)
import Glibc
#endif

/// `/a/b/c` → `/a/b`; `/a` → `/`.
package func parentDirectory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    let parent = String(path[..<slash])
    return parent.isEmpty ? "/" : parent
}

/// The C library's sentence for an `errno` value, for error messages.
package func errnoText(_ code: Int32) -> String {
    String(cString: strerror(code))
}
