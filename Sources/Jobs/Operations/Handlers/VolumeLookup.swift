import CloudStack
/// Reading CloudStack's view of one volume: every handler looks at reality before acting
/// and again when a job it waited on failed.
extension CloudStackClient {
    /// The volume, or nil when CloudStack lists nothing for it (deleted, or expunged).
    /// CloudStack finds a UUID whatever its case (its `uuid` columns compare without case),
    /// and a volume whose id an admin set may list in upper case while volumed holds the
    /// id in lower case (the HTTP API lower-cases ids): the same volume either way.
    func volume(id: String) async throws -> CloudStackVolume? {
        try await listVolumes(id: id).first { $0.id.lowercased() == id.lowercased() }
    }
}
