/// Reading CloudStack's view of one volume: every handler looks at reality before acting
/// and again when a job it waited on failed.
extension CloudStackClient {
    /// The volume, or nil when CloudStack lists nothing for it (deleted, or expunged).
    func volume(id: String) async throws -> CloudStackVolume? {
        try await listVolumes(id: id).first { $0.id == id }
    }
}
