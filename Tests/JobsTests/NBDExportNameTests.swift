import NBD
import Operations
import Testing

@Suite("NBD export names")
struct NBDExportNameTests {
    @Test("a volume's export name is migration-vol-<volume_id>, and maps back to the id")
    func forVolume() throws {
        let name = try ExportName.forVolume("b3bb9310-1b59-4f62-97e8-2c3f0a1d9e44")
        #expect(name == "migration-vol-b3bb9310-1b59-4f62-97e8-2c3f0a1d9e44")
        #expect(ExportName.volumeId(inExportName: name) == "b3bb9310-1b59-4f62-97e8-2c3f0a1d9e44")
        #expect(ExportName.volumeId(inExportName: "migration-vol-nope") == nil)
        #expect(throws: Never.self) { try ExportName.validate(name) }
    }

    @Test(
        "only lower-case canonical UUIDs make export names",
        arguments: [
            "B3BB9310-1B59-4F62-97E8-2C3F0A1D9E44",
            "b3bb9310-1b59-4f62-97e8-2c3f0a1d9e44/../../etc",
            "../x",
            "vm-name]\n[generic]",
            "",
            "b3bb9310 1b59 4f62 97e8 2c3f0a1d9e44",
        ]
    )
    func rejectsNonUUIDs(volumeId: String) {
        let error = #expect(throws: NBDExportError.self) { try ExportName.forVolume(volumeId) }
        #expect(error?.kind == .invalidVolumeId)
        #expect(error?.isTransient == false)
        #expect(error?.message.contains("\n") == false)
    }

    @Test(
        "names that could escape a directory, a config section or a line are rejected",
        arguments: [
            ("../x", "'/'"),
            ("a/b", "'/'"),
            ("x]", "']'"),
            ("[generic", "'['"),
            ("a\nexportname = /etc/shadow", "a newline"),
            ("a\u{0}b", "a NUL byte"),
            ("a b", "a space"),
            ("a\rb", "a carriage return"),
            ("a=b", "'='"),
            ("a#b", "'#'"),
            (".hidden", "starts with '.'"),
            ("a..b", "contains '..'"),
            ("..", "starts with '.'"),
            ("", "is empty"),
            (String(repeating: "a", count: 101), "over the 100-byte limit"),
            ("vol-é", "the byte 0xc3"),
        ]
    )
    func rejectsHostileNames(name: String, reason: String) {
        let error = #expect(throws: NBDExportError.self) { try ExportName.validate(name) }
        #expect(error?.kind == .invalidExportName)
        #expect(error?.message.contains(reason) == true, "\(error?.message ?? "")")
        // The message quotes the name escaped: it never carries a raw newline or NUL.
        #expect(error?.message.contains("\n") == false)
        #expect(error?.message.contains("\u{0}") == false)
    }

    @Test("ordinary names up to 100 bytes pass")
    func acceptsOrdinaryNames() {
        #expect(throws: Never.self) { try ExportName.validate(String(repeating: "a", count: 100)) }
        #expect(throws: Never.self) { try ExportName.validate("disk_1.raw-2") }
    }
}
