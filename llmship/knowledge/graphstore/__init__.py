"""The graph store: the Bolt client (GraphStore, GraphSettings, every Cypher statement), the Neo4j/ArcadeDB dialects, the embedded ArcadeDB launcher."""
