import Foundation
import PackagePlugin

/// Embeds every `migrations/NNNN_name.sql` file into the `Schema` module as a Swift source,
/// so the binary carries its migrations and `migrations/` stays the single source of truth.
@main
struct EmbedMigrations: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let migrationsDirectory = context.package.directoryURL.appending(path: "migrations")
        let sqlFiles = try FileManager.default
            .contentsOfDirectory(at: migrationsDirectory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "sql" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedMigrations.swift")
        return [
            .buildCommand(
                displayName: "Embedding migrations from \(migrationsDirectory.lastPathComponent)/",
                executable: try context.tool(named: "EmbedMigrationsTool").url,
                arguments: [output.path(), migrationsDirectory.path()],
                // The directory itself too: adding a file changes it, and re-runs the tool,
                // which lists the directory again.
                inputFiles: [migrationsDirectory] + sqlFiles,
                outputFiles: [output]
            )
        ]
    }
}
